use super::*;

fn header(c: &mut Checker, path: &str, h: &InteractiveHeader, text_only: bool) {
    match h {
        InteractiveHeader::Text { text } => {
            c.text(&format!("{path}.text"), text, true, limits::HEADER_TEXT_MAX)
        }
        _ if text_only => c.push(
            path,
            ViolationCode::NotAllowed,
            None,
            format!("{path} must be a text header"),
        ),
        InteractiveHeader::Image { image } => media(c, &format!("{path}.image"), "image", image),
        InteractiveHeader::Video { video } => media(c, &format!("{path}.video"), "video", video),
        InteractiveHeader::Document { document } => {
            media(c, &format!("{path}.document"), "document", document)
        }
    }
}

fn body_footer(c: &mut Checker, body: Option<&InteractiveText>, footer: Option<&InteractiveText>) {
    if let Some(b) = body {
        c.text(
            "message.interactive.body.text",
            &b.text,
            true,
            limits::INTERACTIVE_BODY_MAX,
        );
    }
    if let Some(f) = footer {
        c.text(
            "message.interactive.footer.text",
            &f.text,
            true,
            limits::FOOTER_MAX,
        );
    }
}

pub(super) fn interactive(c: &mut Checker, i: &Interactive) {
    const H: &str = "message.interactive.header";
    const A: &str = "message.interactive.action";
    match i {
        Interactive::Button {
            header: h,
            body,
            footer,
            action,
        } => {
            if let Some(h) = h {
                header(c, H, h, false)
            }
            body_footer(c, Some(body), footer.as_ref());
            c.count(
                &format!("{A}.buttons"),
                action.buttons.len(),
                1,
                limits::REPLY_BUTTONS_MAX,
            );
            for (n, b) in action.buttons.iter().enumerate() {
                c.text(
                    &format!("{A}.buttons[{n}].reply.id"),
                    &b.reply.id,
                    true,
                    limits::REPLY_BUTTON_ID_MAX,
                );
                c.text(
                    &format!("{A}.buttons[{n}].reply.title"),
                    &b.reply.title,
                    true,
                    limits::REPLY_BUTTON_TITLE_MAX,
                );
            }
            c.unique(
                &format!("{A}.buttons[].reply.id"),
                action.buttons.iter().map(|b| b.reply.id.as_str()),
            );
            c.unique(
                &format!("{A}.buttons[].reply.title"),
                action.buttons.iter().map(|b| b.reply.title.as_str()),
            );
        }
        Interactive::List {
            header: h,
            body,
            footer,
            action,
        } => {
            if let Some(h) = h {
                header(c, H, h, true)
            }
            body_footer(c, Some(body), footer.as_ref());
            c.text(
                &format!("{A}.button"),
                &action.button,
                true,
                limits::LIST_BUTTON_MAX,
            );
            c.count(
                &format!("{A}.sections"),
                action.sections.len(),
                1,
                limits::LIST_SECTIONS_MAX,
            );
            let rows: Vec<&ListRow> = action.sections.iter().flat_map(|s| &s.rows).collect();
            c.count(
                &format!("{A}.sections[].rows"),
                rows.len(),
                1,
                limits::LIST_ROWS_MAX,
            );
            for (s, section) in action.sections.iter().enumerate() {
                section_title(
                    c,
                    &format!("{A}.sections[{s}].title"),
                    section.title.as_deref(),
                    action.sections.len() > 1,
                );
                for (r, row) in section.rows.iter().enumerate() {
                    let p = format!("{A}.sections[{s}].rows[{r}]");
                    c.text(&format!("{p}.id"), &row.id, true, limits::LIST_ROW_ID_MAX);
                    c.text(
                        &format!("{p}.title"),
                        &row.title,
                        true,
                        limits::LIST_ROW_TITLE_MAX,
                    );
                    if let Some(d) = &row.description {
                        c.text(
                            &format!("{p}.description"),
                            d,
                            false,
                            limits::LIST_ROW_DESCRIPTION_MAX,
                        );
                    }
                }
            }
            c.unique(
                &format!("{A}.sections[].rows[].id"),
                rows.iter().map(|r| r.id.as_str()),
            );
        }
        Interactive::CtaUrl {
            header: h,
            body,
            footer,
            action,
        } => {
            if let Some(h) = h {
                header(c, H, h, false)
            }
            body_footer(c, Some(body), footer.as_ref());
            c.format(
                &format!("{A}.name"),
                action.name == "cta_url",
                "\"cta_url\"",
            );
            c.text(
                &format!("{A}.parameters.display_text"),
                &action.parameters.display_text,
                true,
                limits::CTA_DISPLAY_TEXT_MAX,
            );
            c.format(
                &format!("{A}.parameters.url"),
                is_https_url(&action.parameters.url),
                "an http(s) URL",
            );
        }
        Interactive::Product {
            body,
            footer,
            action,
        } => {
            body_footer(c, body.as_ref(), footer.as_ref());
            c.text(&format!("{A}.catalog_id"), &action.catalog_id, true, 64);
            c.text(
                &format!("{A}.product_retailer_id"),
                &action.product_retailer_id,
                true,
                128,
            );
        }
        Interactive::ProductList {
            header: h,
            body,
            footer,
            action,
        } => {
            header(c, H, h, true);
            body_footer(c, Some(body), footer.as_ref());
            c.text(&format!("{A}.catalog_id"), &action.catalog_id, true, 64);
            c.count(
                &format!("{A}.sections"),
                action.sections.len(),
                1,
                limits::PRODUCT_SECTIONS_MAX,
            );
            let total: usize = action.sections.iter().map(|s| s.product_items.len()).sum();
            c.count(
                &format!("{A}.sections[].product_items"),
                total,
                1,
                limits::PRODUCTS_MAX,
            );
            for (s, section) in action.sections.iter().enumerate() {
                section_title(
                    c,
                    &format!("{A}.sections[{s}].title"),
                    Some(&section.title),
                    true,
                );
            }
        }
        Interactive::Flow {
            header: h,
            body,
            footer,
            action,
        } => {
            if let Some(h) = h {
                header(c, H, h, false)
            }
            body_footer(c, Some(body), footer.as_ref());
            let p = &action.parameters;
            c.format(&format!("{A}.name"), action.name == "flow", "\"flow\"");
            c.format(
                &format!("{A}.parameters.flow_message_version"),
                p.flow_message_version == "3",
                "\"3\"",
            );
            if p.flow_id.is_some() == p.flow_name.is_some() {
                c.push(
                    &format!("{A}.parameters"),
                    ViolationCode::ExactlyOneOf,
                    None,
                    "flow needs exactly one of flow_id or flow_name".into(),
                );
            }
            c.text(
                &format!("{A}.parameters.flow_cta"),
                &p.flow_cta,
                true,
                limits::FLOW_CTA_MAX,
            );
            if let Some(a) = &p.flow_action {
                c.format(
                    &format!("{A}.parameters.flow_action"),
                    matches!(a.as_str(), "navigate" | "data_exchange"),
                    "navigate or data_exchange",
                );
            }
        }
    }
}

fn section_title(c: &mut Checker, path: &str, title: Option<&str>, required: bool) {
    match title {
        Some(t) => c.text(path, t, required, limits::SECTION_TITLE_MAX),
        None if required => c.push(
            path,
            ViolationCode::Required,
            None,
            format!("{path} is required when there are several sections"),
        ),
        None => {}
    }
}
