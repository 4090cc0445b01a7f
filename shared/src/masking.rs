//! Masking of residents' ID numbers and phone numbers, defined once for every
//! export and screen that shows records to someone who does not need them in full
//! (China's Personal Information Protection Law: least access, masked by default).
//!
//! - [`mask_id_number`]: a resident ID number (15 or 18 characters starting with a
//!   six-digit region code) keeps its first 6 and last 4 characters
//!   (`420902********0021`); anything else keeps at most its first and last character.
//! - [`mask_phone`]: an 11-digit mobile number keeps its first 3 and last 4 digits
//!   (`138****0011`); any other number keeps only its last 4 digits.
//! - [`mask_record`]: applies both to every ID and phone field of a record, and to
//!   ID and mobile numbers written into its free text (notes, concerns, follow-ups...).
//!
//! Masking is idempotent: masking a masked value changes nothing.

use crate::records::{FieldValue, Record};

/// The character that replaces hidden characters.
pub const MASK: char = '*';

/// Longest value masked as an ID number in free text: an 18-character ID.
const ID_LEN: usize = 18;
/// The first-generation ID number length.
const OLD_ID_LEN: usize = 15;
/// A mainland mobile number's length.
const MOBILE_LEN: usize = 11;

fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || ('０'..='９').contains(&c)
}

fn stars(n: usize) -> impl Iterator<Item = char> {
    std::iter::repeat_n(MASK, n)
}

/// Masks a resident ID number for display: a well-formed one (15 or 18
/// characters whose first six are digits, the region code) keeps its first 6
/// and last 4 characters; any other value keeps at most its first and last
/// character (values of 3 characters or fewer are hidden entirely). Surrounding
/// whitespace is dropped; an empty value stays empty. The length is kept.
pub fn mask_id_number(id: &str) -> String {
    let chars: Vec<char> = id.trim().chars().collect();
    let n = chars.len();
    let well_formed = (n == ID_LEN || n == OLD_ID_LEN) && chars[..6].iter().all(|c| is_digit(*c));
    if well_formed {
        chars[..6].iter().copied().chain(stars(n - 10)).chain(chars[n - 4..].iter().copied()).collect()
    } else if n <= 3 {
        stars(n).collect()
    } else {
        std::iter::once(chars[0]).chain(stars(n - 2)).chain(std::iter::once(chars[n - 1])).collect()
    }
}

/// Masks a phone number for display: an 11-digit mainland mobile number
/// (optionally written with spaces or dashes, or a `+86`/`86` prefix) becomes
/// `138****0011`; any other value keeps only its last 4 digits, every earlier
/// digit replaced by `*` and other characters left as written (so `0712-2345678`
/// becomes `****-***5678`). A value with 4 digits or fewer has all of them hidden.
/// Surrounding whitespace is dropped.
pub fn mask_phone(phone: &str) -> String {
    let phone = phone.trim();
    // Digits and mask stars, without the separators people type.
    let compact: Vec<char> = phone.chars().filter(|c| !matches!(c, ' ' | '-' | '\u{3000}')).collect();
    let body: &[char] = match compact.as_slice() {
        ['+', '8', '6', rest @ ..] => rest,
        ['8', '6', rest @ ..] if rest.len() == MOBILE_LEN => rest,
        all => all,
    };
    let is_mobile = body.len() == MOBILE_LEN && body[0] == '1' && body.iter().all(|c| is_digit(*c) || *c == MASK);
    if is_mobile {
        return body[..3].iter().copied().chain(stars(4)).chain(body[7..].iter().copied()).collect();
    }
    // Digit positions, counting already-masked ones so that masking is idempotent.
    let is_position = |c: char| is_digit(c) || c == MASK;
    let positions = phone.chars().filter(|c| is_position(*c)).count();
    let keep_from = if positions <= 4 { usize::MAX } else { positions - 4 };
    let mut seen = 0;
    phone
        .chars()
        .map(|c| {
            if !is_position(c) {
                return c;
            }
            seen += 1;
            if seen > keep_from { c } else { MASK }
        })
        .collect()
}

/// Masks ID numbers and mobile numbers written into free text: every run of
/// digits that reads as an ID number (17 digits and a final digit or `X`, or 15
/// digits) or a mobile number (11 digits starting with 1) is masked as
/// [`mask_id_number`] and [`mask_phone`] would; everything else is kept.
pub fn mask_text(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !is_digit(chars[i]) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && is_digit(chars[i]) {
            i += 1;
        }
        // An 18-character ID may end in X.
        if i - start == ID_LEN - 1 && i < chars.len() && matches!(chars[i], 'X' | 'x' | 'Ｘ') {
            i += 1;
        }
        let run: String = chars[start..i].iter().collect();
        let len = i - start;
        if len == ID_LEN || len == OLD_ID_LEN {
            out.push_str(&mask_id_number(&run));
        } else if len == MOBILE_LEN && chars[start] == '1' {
            out.push_str(&mask_phone(&run));
        } else {
            out.push_str(&run);
        }
    }
    out
}

fn mask_in_place(text: &mut String) {
    if text.chars().any(is_digit) {
        *text = mask_text(text);
    }
}

fn mask_phone_in_place(phone: &mut String) {
    if !phone.is_empty() {
        *phone = mask_phone(phone);
    }
}

fn mask_id_in_place(id: &mut String) {
    if !id.is_empty() {
        *id = mask_id_number(id);
    }
}

/// Masks the competing values of conflicting fields as the fields themselves are masked.
fn mask_conflicts(record: &mut Record) {
    let conflicts = match record {
        Record::Household(r) => &mut r.conflicts,
        Record::VisitLog(r) => &mut r.conflicts,
        Record::Case(r) => &mut r.conflicts,
        Record::Promise(r) => &mut r.conflicts,
    };
    for c in conflicts {
        let field = c.field.rsplit('.').next().unwrap_or_default().to_string();
        for v in &mut c.values {
            if let FieldValue::Text(t) = v {
                match field.as_str() {
                    "phone" => mask_phone_in_place(t),
                    "id_number" => mask_id_in_place(t),
                    _ => mask_in_place(t),
                }
            }
        }
    }
}

/// Masks every ID number and phone number in `record`: the household head's
/// and every member's ID and phone fields, and ID or mobile numbers written
/// into any free text (addresses, notes, concerns, findings, titles,
/// descriptions, follow-ups, reasons, promise content and outcomes).
pub fn mask_record(record: &mut Record) {
    mask_conflicts(record);
    match record {
        Record::Household(h) => {
            let f = &mut h.fields;
            mask_phone_in_place(&mut f.phone);
            mask_id_in_place(&mut f.id_number);
            for m in &mut f.members {
                mask_phone_in_place(&mut m.phone);
                mask_id_in_place(&mut m.id_number);
                mask_in_place(&mut m.name);
                mask_in_place(&mut m.relation);
            }
            mask_in_place(&mut f.address);
            mask_in_place(&mut f.head);
            mask_in_place(&mut f.notes);
            f.tags.iter_mut().for_each(mask_in_place);
        }
        Record::VisitLog(v) => {
            let f = &mut v.fields;
            mask_in_place(&mut f.notes);
            mask_in_place(&mut f.findings);
            f.concerns.iter_mut().for_each(mask_in_place);
        }
        Record::Case(c) => {
            mask_in_place(&mut c.fields.title);
            mask_in_place(&mut c.fields.description);
            for f in &mut c.follow_ups {
                mask_in_place(&mut f.note);
            }
            for e in &mut c.status_log {
                if let Some(reason) = &mut e.reason {
                    mask_in_place(reason);
                }
            }
        }
        Record::Promise(p) => {
            mask_in_place(&mut p.fields.content);
            for o in &mut p.outcomes {
                mask_in_place(&mut o.note);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{FieldConflict, Household, HouseholdFields, Member, RecordKind, RecordMeta};
    use crate::{PersonId, TerritoryPath};

    #[test]
    fn an_id_number_keeps_its_region_code_and_last_four() {
        assert_eq!(mask_id_number("420902194803150021"), "420902********0021");
        assert_eq!(mask_id_number("42090219480315002X"), "420902********002X");
        assert_eq!(mask_id_number("420902480315002"), "420902*****5002");
        assert_eq!(mask_id_number(" 420902194803150021 "), "420902********0021");
    }

    #[test]
    fn odd_id_values_keep_at_most_their_first_and_last_character() {
        assert_eq!(mask_id_number(""), "");
        assert_eq!(mask_id_number("7"), "*");
        assert_eq!(mask_id_number("123"), "***");
        assert_eq!(mask_id_number("E12345678"), "E*******8");
        assert_eq!(mask_id_number("4209021948031500"), "4**************0", "16 characters is not an ID number");
        assert_eq!(mask_id_number("护照G1234567"), "护********7");
    }

    #[test]
    fn a_mobile_number_keeps_its_first_three_and_last_four_digits() {
        assert_eq!(mask_phone("13807120011"), "138****0011");
        assert_eq!(mask_phone("138 0712 0011"), "138****0011");
        assert_eq!(mask_phone("+86 138-0712-0011"), "138****0011");
        assert_eq!(mask_phone("8613807120011"), "138****0011");
    }

    #[test]
    fn other_phone_numbers_keep_only_their_last_four_digits() {
        assert_eq!(mask_phone("0712-2345678"), "****-***5678");
        assert_eq!(mask_phone("2345678"), "***5678");
        assert_eq!(mask_phone("110"), "***");
        assert_eq!(mask_phone("无"), "无");
        assert_eq!(mask_phone(""), "");
    }

    #[test]
    fn masking_twice_changes_nothing_more() {
        for id in ["420902194803150021", "420902480315002", "E12345678", "12"] {
            let once = mask_id_number(id);
            assert_eq!(mask_id_number(&once), once, "{id}");
        }
        for phone in ["13807120011", "+86 138 0712 0011", "0712-2345678", "110"] {
            let once = mask_phone(phone);
            assert_eq!(mask_phone(&once), once, "{phone}");
        }
        let text = "电话13807120011，身份证42090219480315002X";
        assert_eq!(mask_text(&mask_text(text)), mask_text(text));
    }

    #[test]
    fn ids_and_mobiles_inside_free_text_are_masked_and_other_numbers_kept() {
        assert_eq!(
            mask_text("家属电话13807120011，身份证号42090219480315002X，住3栋401室"),
            "家属电话138****0011，身份证号420902********002X，住3栋401室"
        );
        assert_eq!(mask_text("工单号 202405010001234567890"), "工单号 202405010001234567890");
        assert_eq!(mask_text("座机0712-2345678"), "座机0712-2345678");
    }

    #[test]
    fn mask_record_hides_the_head_and_every_member() {
        let mut record = Record::Household(Household {
            meta: RecordMeta {
                kind: RecordKind::Household,
                schema: 1,
                grid: TerritoryPath::parse("xg/xn/sh/dh/g1").expect("grid"),
                creator: PersonId(uuid::Uuid::nil()),
                created_at: 0,
            },
            fields: HouseholdFields {
                address: "东湖路12号".into(),
                head: "陈桂英".into(),
                phone: "13807120011".into(),
                id_number: "420902194803150021".into(),
                members: vec![Member {
                    name: "周丽".into(),
                    relation: "女儿".into(),
                    id_number: "420902197501020048".into(),
                    phone: "13907125566".into(),
                    ..Member::default()
                }],
                tags: vec!["独居老人".into()],
                notes: "女儿另一号码15100001111".into(),
            },
            voids: vec![],
            conflicts: vec![FieldConflict {
                field: "phone".into(),
                values: vec![FieldValue::Text("13807120011".into()), FieldValue::Text("13907125566".into())],
            }],
        });
        mask_record(&mut record);
        let Record::Household(h) = record else { panic!("kind") };
        assert_eq!(h.fields.phone, "138****0011");
        assert_eq!(h.fields.id_number, "420902********0021");
        assert_eq!(h.fields.members[0].phone, "139****5566");
        assert_eq!(h.fields.members[0].id_number, "420902********0048");
        assert_eq!(h.fields.notes, "女儿另一号码151****1111");
        assert_eq!(h.fields.address, "东湖路12号");
        assert_eq!(h.fields.head, "陈桂英");
        let masked = [FieldValue::Text("138****0011".into()), FieldValue::Text("139****5566".into())];
        assert_eq!(h.conflicts[0].values, masked, "a conflict's competing phone numbers too");
    }
}
