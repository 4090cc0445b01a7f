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
