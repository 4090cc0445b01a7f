//! No silent overwrites: two offline phones edit every editable field of
//! every record type at once, then sync through a real server. Both converge;
//! fields that merge (long text, tags, concerns, members) keep both edits;
//! single-valued fields show the conflict with both values on both phones,
//! and a value chosen on one phone clears the conflict everywhere.

use gridsync_shared::records::{
    CaseFields, CaseKind, FieldConflict, FieldValue, GeoPoint, HouseholdFields, Member, NewRecord, PromiseFields,
    Record, VisitFields, VisitKind,
};
use gridsync_shared::{DocId, Role};
use gridsync_tests::{Phone, TestServer, assert_converged};

fn household(head: &str) -> NewRecord {
    NewRecord::Household(HouseholdFields {
        address: "东湖路12号".into(),
        head: head.into(),
        phone: "13807120011".into(),
        id_number: "420902194803150021".into(),
        tags: vec!["独居老人".into()],
        notes: "行动不便".into(),
        members: ["周丽", "周强", "周小明"]
            .map(|name| Member { name: name.into(), relation: "家属".into(), ..Member::default() })
            .to_vec(),
    })
}

/// Changes one member of a household on `phone`, offline.
fn edit_member(phone: &mut Phone, household: DocId, index: usize, f: impl FnOnce(&mut Member)) {
    phone
        .edit(household, |e| {
            let Record::Household(h) = e.record()? else { panic!("household") };
            let mut m = h.fields.members[index].clone();
            f(&mut m);
            e.update_member(&m.id.clone(), &m)
        })
        .expect("member edit");
}

/// Edits a record's fields on `phone` with `f`, offline.
fn edit_household(phone: &mut Phone, id: DocId, f: impl FnOnce(&mut HouseholdFields)) {
    phone
        .edit(id, |e| {
            let Record::Household(h) = e.record()? else { panic!("household") };
            let mut fields = h.fields;
            f(&mut fields);
            e.update_household(&fields)
        })
        .expect("household edit");
}

fn edit_visit(phone: &mut Phone, id: DocId, f: impl FnOnce(&mut VisitFields)) {
    phone
        .edit(id, |e| {
            let Record::VisitLog(v) = e.record()? else { panic!("visit") };
            let mut fields = v.fields;
            f(&mut fields);
            e.update_visit(&fields)
        })
        .expect("visit edit");
}

fn edit_case(phone: &mut Phone, id: DocId, f: impl FnOnce(&mut CaseFields)) {
    phone
        .edit(id, |e| {
            let Record::Case(c) = e.record()? else { panic!("case") };
            let mut fields = c.fields;
            f(&mut fields);
            e.update_case(&fields)
        })
        .expect("case edit");
}

fn edit_promise(phone: &mut Phone, id: DocId, f: impl FnOnce(&mut PromiseFields)) {
    phone
        .edit(id, |e| {
            let Record::Promise(p) = e.record()? else { panic!("promise") };
            let mut fields = p.fields;
            f(&mut fields);
            e.update_promise(&fields)
        })
        .expect("promise edit");
}

fn text(s: &str) -> FieldValue {
    FieldValue::Text(s.into())
}

/// The conflicts of a record as one phone reads it, by field.
fn conflicts(phone: &Phone, id: DocId) -> Vec<FieldConflict> {
    phone.replica.record(id).expect("record").conflicts().to_vec()
}

/// Asserts that `id` shows on every phone exactly the conflicts in `want`
/// (field and both values, in any order).
fn assert_conflicts(phones: &[&Phone], id: DocId, want: &[(&str, FieldValue, FieldValue)]) {
    for phone in phones {
        let got = conflicts(phone, id);
        let fields: Vec<&str> = got.iter().map(|c| c.field.as_str()).collect();
        let wanted: Vec<&str> = want.iter().map(|(f, _, _)| *f).collect();
        assert_eq!(fields, wanted, "record {id}: conflicting fields");
        for (c, (_, a, b)) in got.iter().zip(want) {
            assert_eq!(c.values.len(), 2, "{}: {:?}", c.field, c.values);
            assert!(
                c.values.contains(a) && c.values.contains(b),
                "{}: {:?} should hold {a:?} and {b:?}",
                c.field,
                c.values
            );
        }
    }
}

async fn sync_all(phones: &mut [&mut Phone]) {
    for _ in 0..2 {
        for phone in phones.iter_mut() {
            phone.sync().await.expect("sync");
            assert_eq!(phone.replica.rejections().count(), 0, "a refusal: {:?}", phone.replica.rejections().next());
        }
    }
}

#[tokio::test]
async fn two_offline_phones_editing_every_field_of_every_record_converge_merge_and_show_each_conflict() {
    let server = TestServer::start().await;
    let grid = server.grid("g1");
    let community = grid.parent().expect("community");
    let a = server.person(Role::FieldStaff, &grid);
    // The grid manager's phone, the same person's second phone, another grid
    // manager of the grid, and the community's supervisor.
    let mut a1 = server.phone_for(&a).await;
    let mut a2 = server.phone_for(&a).await;
    let mut b = server.phone_in(&grid).await;
    let mut s = server.supervisor_phone(&community).await;

    let h = a1.create(&household("陈桂英")).expect("household");
    let h2 = a1.create(&household("王建国")).expect("household");
    let h3 = a1.create(&household("李秀兰")).expect("household");
    let visit = |household: DocId, at: i64| {
        NewRecord::VisitLog(VisitFields {
            household: Some(household),
            visited_at: at,
            kind: Some(VisitKind::Routine),
            location: None,
            notes: "老人身体尚可".into(),
            concerns: vec!["路灯不亮".into()],
            findings: "楼道堆物".into(),
        })
    };
    let at = a1.clock;
    let v = a1.create(&visit(h, at)).expect("visit");
    let v2 = a1.create(&visit(h2, at)).expect("visit");
    let v3 = a1.create(&visit(h3, at)).expect("visit");
    let c = a1
        .create(&NewRecord::Case(CaseFields {
            kind: CaseKind::Hazard,
            title: "楼道堆放杂物".into(),
            description: "三楼楼道".into(),
            household: Some(h),
            visit: Some(v),
            due_at: Some(at + 86_400_000),
        }))
        .expect("case");
    let p = a1
        .create(&NewRecord::Promise(PromiseFields {
            content: "一周内清理楼道".into(),
            household: Some(h),
            due_at: at + 7 * 86_400_000,
        }))
        .expect("promise");
    sync_all(&mut [&mut a1, &mut a2, &mut b, &mut s]).await;

    // Everyone offline, every editable field changed on two phones at once.
    edit_household(&mut a1, h, |f| {
        f.address = "东湖路12号3栋401".into();
        f.head = "陈桂英（户主）".into();
        f.phone = "13907120022".into();
        f.id_number = "420902194803150048".into();
        f.notes = "行动不便，需每周探望".into();
        f.tags.push("困难群众".into());
    });
    edit_household(&mut b, h, |f| {
        f.address = "东湖路12号3栋402".into();
        f.head = "周丽".into();
        f.phone = "13607120033".into();
        f.id_number = "420902197501020048".into();
        f.notes = "老人耳背，行动不便".into();
        f.tags.push("残疾人".into());
    });
    // Members: different fields of one member, one member's name on both
    // phones, a member removed on one phone and another added on the other.
    let members = |phone: &Phone| -> Vec<Member> {
        let Some(Record::Household(h)) = phone.replica.record(h) else { panic!("household") };
        h.fields.members
    };
    let ids: Vec<String> = members(&a1).into_iter().map(|m| m.id).collect();
    let [daughter, son, grandson] = <[String; 3]>::try_from(ids).expect("three members");
    edit_member(&mut a1, h, 0, |m| {
        m.phone = "13907120022".into();
        m.tags.push("低保".into());
    });
    edit_member(&mut b, h, 0, |m| {
        m.id_number = "420902197501020048".into();
        m.tags.push("残疾人".into());
    });
    edit_member(&mut a1, h, 2, |m| m.name = "周晓明".into());
    edit_member(&mut b, h, 2, |m| m.name = "周小鸣".into());
    a1.edit(h, |e| e.remove_member(&son)).expect("remove");
    let added = b.edit(h, |e| e.add_member(&Member { name: "周小红".into(), ..Member::default() })).expect("add");
    let here = GeoPoint { lat: 30.92, lon: 113.91, accuracy_m: Some(10.0) };
    let there = GeoPoint { lat: 30.93, lon: 113.92, accuracy_m: None };
    edit_visit(&mut a1, v, |f| {
        f.household = Some(h2);
        f.visited_at = at + 1_000;
        f.kind = Some(VisitKind::Care);
        f.location = Some(here);
        f.notes = "老人身体尚可，已送米面".into();
        f.concerns.push("下水道堵塞".into());
        f.findings = "楼道堆物，已劝离".into();
    });
    edit_visit(&mut a2, v, |f| {
        f.household = Some(h3);
        f.visited_at = at + 2_000;
        f.kind = Some(VisitKind::Screening);
        f.location = Some(there);
        f.notes = "上午，老人身体尚可".into();
        f.concerns.push("缺少扶手".into());
        f.findings = "发现：楼道堆物".into();
    });
    edit_case(&mut a1, c, |f| {
        f.kind = CaseKind::Dispute;
        f.title = "楼道堆放纸箱".into();
        f.description = "三楼楼道，纸箱".into();
        f.household = Some(h2);
        f.visit = Some(v2);
        f.due_at = Some(at + 2 * 86_400_000);
    });
    edit_case(&mut s, c, |f| {
        f.kind = CaseKind::Request;
        f.title = "消防通道堵塞".into();
        f.description = "三楼楼道，堵住消防通道".into();
        f.household = Some(h3);
        f.visit = Some(v3);
        f.due_at = Some(at + 3 * 86_400_000);
    });
    edit_promise(&mut a1, p, |f| {
        f.content = "三天内清理楼道".into();
        f.household = Some(h2);
        f.due_at = at + 3 * 86_400_000;
    });
    edit_promise(&mut s, p, |f| {
        f.content = "五天内清理楼道并回访".into();
        f.household = Some(h3);
        f.due_at = at + 5 * 86_400_000;
    });
    sync_all(&mut [&mut a1, &mut a2, &mut b, &mut s]).await;
    assert_converged(&server, &[&a1, &a2, &b, &s], &grid);

    // Merged fields hold both edits.
    let Some(Record::Household(hh)) = s.replica.record(h) else { panic!("household") };
    assert!(hh.fields.notes.contains("每周探望") && hh.fields.notes.contains("耳背"), "{}", hh.fields.notes);
    let mut tags = hh.fields.tags.clone();
    tags.sort();
    assert_eq!(tags, ["困难群众", "残疾人", "独居老人"], "both added tags, each once");
    let Some(Record::VisitLog(vv)) = s.replica.record(v) else { panic!("visit") };
    assert!(vv.fields.notes.contains("送米面") && vv.fields.notes.contains("上午"), "{}", vv.fields.notes);
    assert!(vv.fields.findings.contains("已劝离") && vv.fields.findings.contains("发现"), "{}", vv.fields.findings);
    for concern in ["路灯不亮", "下水道堵塞", "缺少扶手"] {
        assert!(vv.fields.concerns.iter().any(|c| c == concern), "{:?}", vv.fields.concerns);
    }
    let now = members(&s);
    let ids: Vec<&str> = now.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, [daughter.as_str(), grandson.as_str(), added.as_str()], "removed and added members both count");
    assert_eq!((now[0].phone.as_str(), now[0].id_number.as_str()), ("13907120022", "420902197501020048"));
    let mut tags = now[0].tags.clone();
    tags.sort();
    assert_eq!(tags, ["低保", "残疾人"], "both tags; their order is by actor, the same on every replica");
    let Some(Record::Case(cc)) = s.replica.record(c) else { panic!("case") };
    assert!(cc.fields.description.contains("纸箱") && cc.fields.description.contains("消防通道"));

    // Single-valued fields show the conflict with both values, on every phone.
    let phones = [&a1, &a2, &b, &s];
    let id = |d: DocId| text(&d.to_string());
    let time = FieldValue::Number;
    assert_conflicts(
        &phones,
        h,
        &[
            ("address", text("东湖路12号3栋401"), text("东湖路12号3栋402")),
            ("head", text("陈桂英（户主）"), text("周丽")),
            ("phone", text("13907120022"), text("13607120033")),
            ("id_number", text("420902194803150048"), text("420902197501020048")),
            (&format!("members.{grandson}.name"), text("周晓明"), text("周小鸣")),
        ],
    );
    assert_conflicts(
        &phones,
        v,
        &[
            ("household", id(h2), id(h3)),
            ("visited_at", time(at + 1_000), time(at + 2_000)),
            ("kind", text("care"), text("screening")),
            ("location", FieldValue::Point(here), FieldValue::Point(there)),
        ],
    );
    assert_conflicts(
        &phones,
        c,
        &[
            ("kind", text("dispute"), text("request")),
            ("title", text("楼道堆放纸箱"), text("消防通道堵塞")),
            ("household", id(h2), id(h3)),
            ("visit", id(v2), id(v3)),
            ("due_at", time(at + 2 * 86_400_000), time(at + 3 * 86_400_000)),
        ],
    );
    assert_conflicts(
        &phones,
        p,
        &[
            ("content", text("三天内清理楼道"), text("五天内清理楼道并回访")),
            ("household", id(h2), id(h3)),
            ("due_at", time(at + 3 * 86_400_000), time(at + 5 * 86_400_000)),
        ],
    );

    // Choosing on one phone (the second listed value each time) clears the conflict everywhere.
    let mut chosen = Vec::new();
    for record in [h, v, c, p] {
        for conflict in conflicts(&a1, record) {
            let value = conflict.values[1].clone();
            a1.edit(record, |e| e.resolve_conflict(&conflict.field, &value)).expect("choose");
            chosen.push((record, conflict.field, value));
        }
    }
    assert_eq!(chosen.len(), 17);
    sync_all(&mut [&mut a1, &mut a2, &mut b, &mut s]).await;
    assert_converged(&server, &[&a1, &a2, &b, &s], &grid);
    for phone in [&a1, &a2, &b, &s] {
        for record in [h, v, c, p] {
            assert!(conflicts(phone, record).is_empty(), "{record}: {:?}", conflicts(phone, record));
        }
    }
    let shown = |record: DocId, field: &str| -> FieldValue {
        let json = serde_json::to_value(b.replica.record(record).expect("record")).expect("json");
        serde_json::from_value(json["fields"][field].clone()).expect("value")
    };
    for (record, field, value) in &chosen {
        if field.starts_with("members.") {
            assert_eq!(&text(&members(&b)[1].name), value, "{field}");
        } else {
            assert_eq!(&shown(*record, field), value, "{record} {field}");
        }
    }
}
