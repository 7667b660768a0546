//! Access tokens: which are valid, until when, and which business accounts (WABAs) each may
//! act for. A system user's token reaches only the accounts assigned to it; used on another
//! account's number, template or media, Meta answers as if the object did not exist (HTTP
//! 400, code 100, subcode 33: "does not exist, cannot be loaded due to missing permissions").

use std::collections::BTreeSet;

use crate::model::{Grant, World};
use crate::{GraphError, Simulator};

impl Grant {
    fn live(&self, now_s: i64) -> bool {
        self.expires_at.is_none_or(|e| e > now_s)
    }

    fn reaches(&self, waba_id: &str) -> bool {
        self.wabas.as_ref().is_none_or(|w| w.contains(waba_id))
    }
}

/// Why a token may not do what it was used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denied {
    /// Unknown or expired (190).
    Invalid,
    /// Valid, but not for the account that owns the object (100/33).
    OutOfScope,
}

impl World {
    /// The account an object belongs to: a WABA itself, or a number's, a template's or a media
    /// object's (through its number). `None` for ids the simulator does not know.
    pub(crate) fn owner_waba(&self, id: &str) -> Option<&str> {
        if let Some(w) = self.wabas.get(id) {
            return Some(&w.id);
        }
        if let Some(p) = self.phones.get(id) {
            return Some(&p.waba_id);
        }
        if let Some(t) = self.templates.get(id) {
            return Some(&t.waba_id);
        }
        let media = self.media.get(id)?;
        self.phones
            .get(&media.phone_number_id)
            .map(|p| p.waba_id.as_str())
    }

    /// Whether `token` may act on `object` (an id of the request's path) at `now_s`.
    pub(crate) fn authorize(
        &self,
        token: Option<&str>,
        object: Option<&str>,
        now_s: i64,
    ) -> Result<(), Denied> {
        let grant = token
            .and_then(|t| self.tokens.get(t))
            .filter(|g| g.live(now_s))
            .ok_or(Denied::Invalid)?;
        match object.and_then(|o| self.owner_waba(o)) {
            Some(waba) if !grant.reaches(waba) => Err(Denied::OutOfScope),
            _ => Ok(()),
        }
    }
}

impl Simulator {
    /// Registers an access token for every account; `expires_at` (epoch s) `None` never
    /// expires.
    pub fn add_token(&self, token: &str, expires_at: Option<i64>) {
        self.grant(token, expires_at, None);
    }

    /// Registers a system user's token that reaches only `wabas`.
    pub fn add_scoped_token(&self, token: &str, expires_at: Option<i64>, wabas: &[&str]) {
        let wabas = wabas.iter().map(|w| (*w).to_owned()).collect();
        self.grant(token, expires_at, Some(wabas));
    }

    /// Registers (or replaces) `token`.
    pub fn grant(&self, token: &str, expires_at: Option<i64>, wabas: Option<BTreeSet<String>>) {
        self.world()
            .tokens
            .insert(token.to_owned(), Grant { expires_at, wabas });
    }

    /// Graph auth for a request on `object`: 190 for an unknown or expired token, 100/33 for
    /// a token that does not reach the object's account.
    pub(crate) fn authorize_graph(
        &self,
        token: &str,
        object: Option<&str>,
        method: &str,
    ) -> Result<(), GraphError> {
        let now = self.now();
        match self.world().authorize(Some(token), object, now) {
            Ok(()) => Ok(()),
            Err(Denied::Invalid) => Err(GraphError::new(
                401,
                190,
                "Error validating access token",
                "The access token is invalid or has expired.",
            )),
            Err(Denied::OutOfScope) => Err(out_of_scope(object.unwrap_or_default(), method)),
        }
    }
}

/// Meta's answer to an object the token may not see: the one it gives for an unknown id.
pub(crate) fn out_of_scope(id: &str, method: &str) -> GraphError {
    GraphError {
        http: 400,
        code: 100,
        subcode: Some(33),
        message: format!(
            "Unsupported {} request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation.",
            method.to_ascii_lowercase()
        ),
        details: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Tier;

    #[tokio::test]
    async fn a_scoped_token_reaches_its_accounts_objects_only() {
        let sim = Simulator::new(Default::default());
        sim.create_waba("111", Tier::T2K);
        sim.create_waba("222", Tier::T2K);
        sim.create_phone_number("9001", "111", "+1 555 0001");
        sim.create_phone_number("9002", "222", "+1 555 0002");
        sim.add_scoped_token("only-111", None, &["111"]);
        sim.add_token("all", None);
        sim.add_scoped_token("gone", Some(1), &["111"]);
        let check = |t: &str, o: &str| sim.world().authorize(Some(t), Some(o), sim.now());
        assert_eq!(check("only-111", "9001"), Ok(()));
        assert_eq!(check("only-111", "111"), Ok(()));
        assert_eq!(check("only-111", "9002"), Err(Denied::OutOfScope));
        assert_eq!(check("only-111", "222"), Err(Denied::OutOfScope));
        assert_eq!(check("all", "9002"), Ok(()));
        assert_eq!(check("gone", "9001"), Err(Denied::Invalid));
        assert_eq!(check("nobody", "9001"), Err(Denied::Invalid));
        // Unknown ids are left to the route (which answers 100/33 itself).
        assert_eq!(check("only-111", "424242"), Ok(()));
        let e = sim
            .authorize_graph("only-111", Some("9002"), "POST")
            .unwrap_err();
        assert_eq!((e.http, e.code, e.subcode), (400, 100, Some(33)));
        assert!(
            e.message
                .starts_with("Unsupported post request. Object with ID '9002'")
        );
        let e = sim
            .authorize_graph("nobody", Some("9001"), "GET")
            .unwrap_err();
        assert_eq!((e.http, e.code), (401, 190));
    }
}
