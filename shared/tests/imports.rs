//! The import templates' checks: ID numbers with their GB 11643 check digit,
//! phones, codes, roles, tags, header matching and whole rows, with Chinese reasons.

use gridsync_shared::Role;
use gridsync_shared::imports::*;

/// The check character computed here from the standard's weights, independently of the crate.
fn check_char(first17: &str) -> char {
    let weights = [7u32, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = first17.chars().zip(weights).map(|(c, w)| c.to_digit(10).unwrap() * w).sum();
    "10X98765432".chars().nth((sum % 11) as usize).unwrap()
}

fn id(first17: &str) -> String {
    format!("{first17}{}", check_char(first17))
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_well_known_sample_id_number_passes_its_check_digit() {
    // The standard's own example: 11010519491231002X.
    assert_eq!(check_id_number("11010519491231002x").as_deref(), Ok("11010519491231002X"));
    assert_eq!(id_check_char("11010519491231002"), Some('X'));
}

#[test]
fn real_looking_id_numbers_pass_and_a_changed_digit_fails_the_checksum() {
    for first in ["42090219500312002", "42090119881105301", "42092120160229004", "42098420011231777"] {
        let good = id(first);
        assert_eq!(check_id_number(&good), Ok(good.clone()), "{good}");
        // Change one digit of the body: the check digit no longer fits.
        let mut bad: Vec<char> = good.chars().collect();
        bad[3] = if bad[3] == '9' { '8' } else { '9' };
        let bad: String = bad.into_iter().collect();
        let err = check_id_number(&bad).unwrap_err();
        assert!(err.contains("校验位"), "{err}");
    }
}

#[test]
fn malformed_id_numbers_are_refused_with_a_reason() {
    assert!(check_id_number("4209021950031200").unwrap_err().contains("18位"));
    assert!(check_id_number("420902500312002").unwrap_err().contains("15位"));
    assert!(check_id_number("42090219500312A02X").unwrap_err().contains("数字"));
    // Birth dates: 30 February, month 13, 1899, 29 February of a non-leap year.
    for first in ["42090219500230002", "42090219501312002", "42090218990312002", "42090220150229002"] {
        assert!(check_id_number(&id(first)).unwrap_err().contains("出生日期"), "{first}");
    }
    // 2016 is a leap year: 29 February is a real day.
    assert!(check_id_number(&id("42090220160229002")).is_ok());
}

#[test]
fn phones_are_mobiles_or_landlines_with_an_area_code() {
    for good in ["13800138000", "19912345678", "0712-2345678", "027-87654321", "138 0013 8000"] {
        assert!(check_phone(good).is_ok(), "{good}");
    }
    for bad in ["12800138000", "1380013800", "138001380001", "2345678", "712-2345678", "0712-23456", "电话"] {
        assert!(check_phone(bad).unwrap_err().contains("电话号码格式不正确"), "{bad}");
    }
}

#[test]
fn codes_roles_and_tags_follow_the_template() {
    assert!(check_code("g-01").is_ok());
    assert!(check_code("G01").is_err());
    assert!(check_code(&"a".repeat(33)).is_err());
    assert_eq!(parse_role("网格员"), Ok(Role::FieldStaff));
    assert_eq!(parse_role("网格长"), Ok(Role::Supervisor));
    assert_eq!(parse_role("督导"), Ok(Role::Supervisor));
    assert_eq!(parse_role(" 管理员 "), Ok(Role::Administrator));
    assert!(parse_role("队长").is_err());
    assert_eq!(split_tags("独居老人、低保,残疾人，低保; 空巢；"), strings(&["独居老人", "低保", "残疾人", "空巢"]));
}

#[test]
fn headers_match_in_any_order_and_unknown_ones_are_listed() {
    let headers = strings(&["\u{feff}姓名 ", "角色", "所属区域", "登录名", "工号"]);
    let map = match_headers(ImportKind::People, &headers).unwrap();
    assert_eq!(map.unknown, strings(&["工号"]));
    let row = strings(&["张伟", "网格员", "xg/xn/sh/dh/g01", " zhangwei ", "007"]);
    let p = person_row(&map, 2, &row).unwrap();
    assert_eq!((p.name.as_str(), p.username.as_str(), p.role), ("张伟", "zhangwei", Role::FieldStaff));
}

#[test]
fn a_file_missing_a_required_column_is_refused_at_row_one() {
    let problems = match_headers(ImportKind::Households, &strings(&["姓名", "与户主关系"])).unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!((problems[0].row, problems[0].column.as_str()), (1, "所属网格"));
    assert!(problems[0].reason_zh.contains("人口信息表"));
}

#[test]
fn a_resident_row_lists_every_problem_by_column_without_quoting_values() {
    let headers: Vec<String> = ImportKind::Households.columns().iter().map(|c| c.header.to_string()).collect();
    let map = match_headers(ImportKind::Households, &headers).unwrap();
    let bad_id = "420902195003120026"; // wrong check digit
    let row = strings(&["", "xg/xn/sh/dh/g01", "", "", "户主", bad_id, "1234", "", "", ""]);
    let problems = resident_row(&map, 7, &row).unwrap_err();
    let cols: Vec<&str> = problems.iter().map(|p| p.column.as_str()).collect();
    assert_eq!(cols, ["姓名", "身份证号", "联系电话", "地址"], "{problems:?}");
    assert!(problems.iter().all(|p| p.row == 7 && !p.reason_zh.contains(bad_id) && !p.reason_zh.contains("1234")));

    let good = id("42090219500312002");
    let row =
        strings(&["", "xg/xn/sh/dh/g01", "东湖路1号", "李秀英", "户主", &good, "13800138000", "独居老人", "", ""]);
    let r = resident_row(&map, 8, &row).unwrap();
    assert_eq!(r.household_key(), Some(format!("id:{good}")));
    assert!(r.is_head());
}

#[test]
fn a_head_without_a_household_number_needs_an_id_number() {
    let headers: Vec<String> = ImportKind::Households.columns().iter().map(|c| c.header.to_string()).collect();
    let map = match_headers(ImportKind::Households, &headers).unwrap();
    let row = strings(&["", "g", "东湖路1号", "李秀英", "户主", "", "", "", "", ""]);
    let problems = resident_row(&map, 3, &row).unwrap_err();
    assert_eq!(problems[0].column, "身份证号");
    let row = strings(&["HH-1", "g", "东湖路1号", "李秀英", "户主", "", "", "", "", ""]);
    assert_eq!(resident_row(&map, 3, &row).unwrap().household_key().as_deref(), Some("no:HH-1"));
}

#[test]
fn a_territory_row_needs_every_code_and_name() {
    let headers: Vec<String> = ImportKind::Territories.columns().iter().map(|c| c.header.to_string()).collect();
    let map = match_headers(ImportKind::Territories, &headers).unwrap();
    let row = strings(&["xn", "孝南区", "sh", "书院街道", "DH", "东湖社区", "g01", ""]);
    let problems = territory_row(&map, 2, &row).unwrap_err();
    let cols: Vec<&str> = problems.iter().map(|p| p.column.as_str()).collect();
    assert_eq!(cols, ["社区编码", "网格名称"]);
}

mod households_built_in_one_batch {
    //! A household an import builds in one batch is the document the phone's
    //! own path (`new_record_with_id`) makes, and the full rules accept it.

    use automerge::{ActorId, Automerge, ObjType, ROOT, ReadDoc, Value};
    use gridsync_shared::records::*;
    use gridsync_shared::rules::{RejectReason, check_new};
    use gridsync_shared::{Author, DocId, PersonId, Role, TerritoryPath};

    const NOW: i64 = 1_760_000_000_000;

    fn grid() -> TerritoryPath {
        "xg/xn/sh/dh/g1".parse().expect("grid")
    }

    fn admin() -> Author {
        Author {
            person: PersonId(uuid::Uuid::from_u128(7)),
            role: Role::Administrator,
            territory: "xg".parse().unwrap(),
        }
    }

    fn staff() -> Author {
        Author { person: PersonId(uuid::Uuid::from_u128(8)), role: Role::FieldStaff, territory: grid() }
    }

    fn member(id: &str, name: &str, relation: &str, id_number: &str, phone: &str, tags: &[&str]) -> Member {
        Member {
            id: id.into(),
            name: name.into(),
            relation: relation.into(),
            id_number: id_number.into(),
            phone: phone.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    /// Every shape the import and a form may hand over: members with an id, without one,
    /// the same member twice, an id that is not a UUID, empty fields, repeated tags, notes with an emoji.
    fn fields() -> HouseholdFields {
        HouseholdFields {
            address: "东湖路12号 3栋\"2单元\"".into(),
            head: "陈桂英".into(),
            phone: "13807120011".into(),
            id_number: "420902194803150021".into(),
            members: vec![
                member(
                    "0190f000-0000-7000-8000-000000000001",
                    "陈桂英",
                    "户主",
                    "420902194803150021",
                    "",
                    &["独居老人"],
                ),
                member("", "周丽", "女儿", "", "13807120012", &["低保", "低保"]),
                member("", "周丽", "女儿", "", "13807120012", &[]),
                member("7@abc", "不是UUID", "其他", "", "", &[]),
                member("", "", "", "", "", &[]),
            ],
            tags: vec!["独居老人".into(), "困难群众".into(), "独居老人".into()],
            notes: "行动不便，需每周探望 🏠\n第二行".into(),
        }
    }

    fn id() -> DocId {
        DocId::new_v7(NOW as u64, [9; 10])
    }

    fn household(doc: &Automerge) -> HouseholdFields {
        match read_record(doc).expect("the strict reader reads it") {
            Record::Household(h) => h.fields,
            other => panic!("not a household: {other:?}"),
        }
    }

    /// Member ids made at random blanked, so two builds compare.
    fn without_made_ids(mut f: HouseholdFields) -> HouseholdFields {
        for m in &mut f.members {
            if !m.id.starts_with("0190f000") {
                m.id.clear();
            }
        }
        f
    }

    /// What a document holds under `obj`, key by key: each scalar's value, each object's type.
    fn shape(doc: &Automerge, obj: &automerge::ObjId) -> Vec<(String, String)> {
        doc.keys(obj)
            .map(|k| {
                let v = match doc.get(obj, k.as_str()).expect("get") {
                    Some((Value::Object(t), _)) => format!("{t:?}"),
                    Some((Value::Scalar(s), _)) => format!("{s:?}"),
                    None => "absent".into(),
                };
                (if uuid::Uuid::parse_str(&k).is_ok() && !k.starts_with("0190f000") { "made".into() } else { k }, v)
            })
            .collect()
    }

    #[test]
    fn an_import_built_household_is_the_document_the_phones_path_makes_and_the_full_rules_accept_it() {
        let actor = ActorId::from(&[3u8; 16][..]);
        let f = fields();
        let (batch, record) =
            new_household_in_one_batch(id(), actor.clone(), &admin(), &grid(), NOW, &f).expect("built in one batch");
        let usual = new_record_with_id(id(), actor, &admin(), &grid(), NOW, &NewRecord::Household(f)).expect("usual");

        // One change, as a new record from a phone.
        assert_eq!(batch.get_changes(&[]).len(), 1);
        // The same record, read strictly, after a round trip through the bytes stored.
        let stored = Automerge::load(&batch.save()).expect("load");
        assert_eq!(read_record(&stored).expect("read"), record);
        assert_eq!(without_made_ids(household(&stored)), without_made_ids(household(&usual)));
        assert_eq!(household(&stored).members.len(), 3, "the same member twice is one; a non-UUID id is skipped");
        assert_eq!(household(&stored).tags, vec!["独居老人".to_string(), "困难群众".into()]);
        assert_eq!(read_record(&stored).unwrap().meta(), read_record(&usual).unwrap().meta());
        // The same keys, objects and values, down into each member.
        assert_eq!(shape(&stored, &ROOT), shape(&usual, &ROOT));
        let members = |doc: &Automerge| match doc.get(ROOT, "members_by_id").expect("get") {
            Some((Value::Object(ObjType::Map), m)) => m,
            other => panic!("members map: {other:?}"),
        };
        let each = |doc: &Automerge| -> Vec<Vec<(String, String)>> {
            let map = members(doc);
            let mut all: Vec<_> = doc
                .keys(&map)
                .map(|k| match doc.get(&map, k.as_str()).expect("get") {
                    Some((Value::Object(ObjType::Map), m)) => shape(doc, &m),
                    other => panic!("member: {other:?}"),
                })
                .collect();
            all.sort();
            all
        };
        assert_eq!(each(&stored), each(&usual));
        // The full rules, as the server checks a pushed new record.
        assert_eq!(check_new(&stored, &admin()).expect("the rules accept it"), record);
    }

    #[test]
    fn an_import_built_household_takes_phone_edits_that_merge_with_a_later_import() {
        let (mut server, _) =
            new_household_in_one_batch(id(), ActorId::from(&[3u8; 16][..]), &admin(), &grid(), NOW, &fields())
                .expect("built");
        let mut phone = Automerge::load(&server.save()).expect("load").with_actor(ActorId::from(&[4u8; 16][..]));
        let mut f = household(&phone);
        f.notes = format!("{}\n已申请低保", f.notes);
        f.members[1].phone = "13900000000".into();
        Editor::new(&mut phone, &staff(), NOW + 1).update_household(&f).expect("a field staff edit passes the rules");
        let mut g = household(&server);
        g.address = "东湖路14号".into();
        Editor::new(&mut server, &admin(), NOW + 2).update_household(&g).expect("the import's update");
        server.merge(&mut phone).expect("merge");
        let merged = household(&server);
        assert_eq!(merged.address, "东湖路14号");
        assert!(merged.notes.ends_with("已申请低保") && merged.notes.contains("🏠"), "{}", merged.notes);
        assert_eq!(merged.members[1].phone, "13900000000");
    }

    #[test]
    fn a_household_outside_the_importers_territory_or_with_a_bad_id_is_refused() {
        let other: TerritoryPath = "wh/x/y/z/g1".parse().unwrap();
        let refused = new_household_in_one_batch(id(), ActorId::random(), &admin(), &other, NOW, &fields());
        assert!(
            matches!(&refused, Err(EditError::Rejected(r)) if r.reason == RejectReason::OutsideTerritory),
            "{refused:?}"
        );
        let v4 = DocId(uuid::Uuid::new_v4());
        assert!(new_household_in_one_batch(v4, ActorId::random(), &admin(), &grid(), NOW, &fields()).is_err());
        let mut long = fields();
        long.address = "路".repeat(limits::SHORT_CHARS + 1);
        assert!(new_household_in_one_batch(id(), ActorId::random(), &admin(), &grid(), NOW, &long).is_err());
    }
}
