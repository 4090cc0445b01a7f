//! A small demo city for a first look: one district, one sub-district, two
//! communities, three grids, an account for each role and some households.
//! Created only on an empty store; passwords are printed once.

use crate::admin::{add_person, add_territory, random_password};
use crate::auth::register_device;
use crate::error::ApiError;
use crate::store::{DocWrite, Store};
use automerge::ActorId;
use gridsync_shared::records::{HouseholdFields, Member, NewRecord, new_record};
use gridsync_shared::{Author, Role, TerritoryPath};

const TERRITORIES: &[(&str, &str)] = &[
    ("demo", "示范市"),
    ("demo/cq", "城区"),
    ("demo/cq/cn", "城南街道"),
    ("demo/cq/cn/dh", "东湖社区"),
    ("demo/cq/cn/dh/g01", "东湖社区第一网格"),
    ("demo/cq/cn/dh/g02", "东湖社区第二网格"),
    ("demo/cq/cn/xy", "西苑社区"),
    ("demo/cq/cn/xy/g01", "西苑社区第一网格"),
];

/// (username, name, role, territory)
const PEOPLE: &[(&str, &str, Role, &str)] = &[
    ("admin", "系统管理员", Role::Administrator, "demo"),
    ("zhuren", "王主任", Role::Supervisor, "demo/cq/cn"),
    ("wgy1", "李网格", Role::FieldStaff, "demo/cq/cn/dh/g01"),
    ("wgy2", "张网格", Role::FieldStaff, "demo/cq/cn/dh/g02"),
    ("wgy3", "刘网格", Role::FieldStaff, "demo/cq/cn/xy/g01"),
];

/// A demo household: head, address, phone, id number, tags, (member, relation).
type DemoHousehold = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

const HOUSEHOLDS: &[DemoHousehold] = &[
    ("陈桂英", "东湖路12号3栋2单元401", "13807120011", "420902194803150021", &["独居老人"], &[]),
    (
        "周建国",
        "东湖路12号3栋1单元102",
        "13907120022",
        "420902196511020017",
        &["困难群众", "残疾人"],
        &[("周丽", "女儿"), ("吴秀兰", "配偶")],
    ),
    ("黄志强", "东湖路18号1栋501", "13607120033", "420902198207250035", &[], &[("黄小明", "儿子")]),
    ("孙玉梅", "湖滨巷5号", "13507120044", "420902195912300048", &["困难群众"], &[]),
    ("赵德福", "西苑新村7栋303", "13707120055", "420902194105060013", &["独居老人", "困难群众"], &[]),
    ("钱明", "西苑新村2栋101", "18907120066", "420902199003140051", &[], &[("钱多多", "女儿"), ("林芳", "配偶")]),
];

/// Whether the store has nobody in it yet.
pub fn store_is_empty(store: &dyn Store) -> Result<bool, ApiError> {
    Ok(store.people()?.is_empty())
}

/// Creates the demo city on an empty store; returns the accounts and passwords
/// as text to print once.
pub fn create_demo(store: &dyn Store, now: i64) -> Result<String, ApiError> {
    if !store_is_empty(store)? {
        return Err(ApiError::Conflict("the store already has people; the demo only fills an empty store".into()));
    }
    for (path, name) in TERRITORIES {
        add_territory(store, &path.parse().map_err(|e| ApiError::Internal(format!("{e}")))?, name)?;
    }
    let mut text = String::from("Demo accounts (passwords are shown only now):\n");
    let mut staff = Vec::new();
    for (username, name, role, territory) in PEOPLE {
        let password = random_password();
        let territory: TerritoryPath = territory.parse().map_err(|e| ApiError::Internal(format!("{e}")))?;
        let person = add_person(store, username, name, *role, &territory, &password)?;
        text.push_str(&format!(
            "  {:<8} {:<10} {:<6} {:<20} password: {password}\n",
            username,
            name,
            role.name_zh(),
            territory
        ));
        if *role == Role::FieldStaff {
            staff.push(person);
        }
    }
    // Households in each grid, written by that grid's field staff through an
    // import device that is revoked once the import is done.
    let mut devices = Vec::new();
    for person in &staff {
        devices.push(register_device(store, person, "演示数据导入", now)?);
    }
    for (i, (head, address, phone, id_number, tags, members)) in HOUSEHOLDS.iter().enumerate() {
        let who = i * staff.len() / HOUSEHOLDS.len();
        let (person, device) = (&staff[who], &devices[who]);
        let actor = ActorId::from(hex::decode(&device.actor).map_err(|e| ApiError::Internal(e.to_string()))?);
        let author = Author { person: person.id, role: person.role, territory: person.territory.clone() };
        let fields = HouseholdFields {
            address: (*address).into(),
            head: (*head).into(),
            phone: (*phone).into(),
            id_number: (*id_number).into(),
            members: members
                .iter()
                .map(|(n, r)| Member { name: (*n).into(), relation: (*r).into(), ..Member::default() })
                .collect(),
            tags: tags.iter().map(|t| (*t).to_string()).collect(),
            notes: String::new(),
        };
        let mut random = [0u8; 10];
        random.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..10]);
        let (id, doc) = new_record(actor, &author, &person.territory, now, random, &NewRecord::Household(fields))
            .map_err(|e| ApiError::Internal(format!("demo household: {e}")))?;
        let record = gridsync_shared::records::read_record(&doc)
            .map_err(|e| ApiError::Internal(format!("demo household: {e}")))?;
        store.commit_doc(
            DocWrite {
                doc: id,
                grid: person.territory.clone(),
                summary: record.summary(),
                bytes: doc.save(),
                heads: doc.get_heads(),
                device: device.device,
                changes: doc.get_changes(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect(),
                photos: Vec::new(),
                row: Some(gridsync_shared::records::row::encode_row(&record)),
            },
            now,
        )?;
    }
    for d in devices {
        crate::admin::revoke_device(store, None, d.device, "cli")?;
    }
    store.flush()?;
    store.append_audit("cli", "demo.create", "demo city created", now)?;
    Ok(text)
}
