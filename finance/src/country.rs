//! A recipient's country, as Meta prices it: from the calling code of the phone number
//! (libphonenumber's metadata, through the `phonenumber` crate), or, for a user known only by
//! business-scoped user id, from the BSUID's country prefix (`BR.1502576394655843`).

use phonenumber::metadata::DATABASE;

/// Written when neither the number nor the BSUID names a country.
pub const UNKNOWN_COUNTRY: &str = "ZZ";

/// The ISO 3166-1 alpha-2 country of a recipient (`wa_id` digits, `+`-prefixed number or BSUID).
pub fn recipient_country(recipient: &str) -> String {
    let recipient = recipient.trim();
    if let Some((prefix, rest)) = recipient.split_once('.')
        && prefix.len() == 2
        && prefix.bytes().all(|b| b.is_ascii_uppercase())
        && !rest.is_empty()
    {
        return prefix.to_owned();
    }
    let digits: String = recipient.chars().filter(char::is_ascii_digit).collect();
    // E.164: at most 15 digits; nothing shorter than 7 is a full international number.
    if !(7..=15).contains(&digits.len()) {
        return UNKNOWN_COUNTRY.to_owned();
    }
    let Ok(number) = phonenumber::parse(None, format!("+{digits}")) else {
        return UNKNOWN_COUNTRY.to_owned();
    };
    if let Some(id) = number.country().id() {
        return id.as_ref().to_owned();
    }
    // A number no region's patterns claim (a test range, a new block): the code's main country,
    // which is how Meta's rate card prices a calling code shared by several countries.
    DATABASE
        .by_code(&number.country().code())
        .and_then(|regions| {
            regions
                .into_iter()
                .find(|m| m.is_main_country_for_code())
                .map(|m| m.id().to_owned())
        })
        .filter(|id| id.len() == 2 && id.bytes().all(|b| b.is_ascii_uppercase()))
        .unwrap_or_else(|| UNKNOWN_COUNTRY.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries_come_from_the_calling_code() {
        assert_eq!(recipient_country("5516992318222"), "BR");
        assert_eq!(recipient_country("+44 7700 900123"), "GB");
        assert_eq!(recipient_country("919876543210"), "IN");
        assert_eq!(recipient_country("2348031234567"), "NG");
        // +1 is shared: a Canadian area code is Canada, a US one the US.
        assert_eq!(recipient_country("14165550123"), "CA");
        assert_eq!(recipient_country("12125550123"), "US");
        // 555 numbers belong to no region's patterns: the code's main country.
        assert_eq!(recipient_country("15550783881"), "US");
    }

    #[test]
    fn bsuids_carry_their_country() {
        assert_eq!(recipient_country("BR.1502576394655843"), "BR");
        assert_eq!(recipient_country("IN.77"), "IN");
    }

    #[test]
    fn what_names_no_country_is_unknown() {
        assert_eq!(recipient_country(""), UNKNOWN_COUNTRY);
        assert_eq!(recipient_country("br.123"), UNKNOWN_COUNTRY);
        assert_eq!(recipient_country("999999"), UNKNOWN_COUNTRY);
        assert_eq!(recipient_country("1234567890123456"), UNKNOWN_COUNTRY);
    }
}
