//! Realistic visit logs: about 600 characters of Chinese notes drawn from what
//! grid managers actually write, 2–3 residents' concerns and a GPS position.

use gridsync_shared::records::{GeoPoint, VisitFields, VisitKind};
use rand::Rng;
use rand::seq::IndexedRandom;

const SENTENCES: &[&str] = &[
    "今天上午入户走访，户主在家，家庭成员身体状况良好，对社区近期开展的环境整治工作表示满意。",
    "老人独居，子女在外地务工，每周通一次电话，日常生活基本能够自理，但上下楼梯较为吃力。",
    "反映楼道内堆放杂物较多，存在消防安全隐患，已现场提醒住户及时清理，并告知物业跟进。",
    "住户提出小区东门路灯损坏已有半个月，夜间出行不便，希望尽快维修，已记录并上报。",
    "了解到家中有一名残疾人，已按规定享受残疾人两项补贴，近期康复情况稳定，无新增需求。",
    "邻里之间因停车位问题发生口角，双方情绪较为激动，经现场调解后暂时平息，需后续回访。",
    "对燃气使用情况进行了安全检查，软管老化，建议更换，并发放了燃气安全宣传资料一份。",
    "家庭经济较为困难，主要收入来源为低保金和临时务工收入，孩子上学费用存在一定压力。",
    "宣传了医保参保缴费政策和反诈骗知识，住户表示已经下载国家反诈中心应用程序。",
    "雨季来临前检查了房屋外墙及排水情况，发现雨水管堵塞，已联系物业安排人员疏通。",
    "询问了近期就业情况，家中一人待业，已推荐参加街道组织的招聘会和技能培训课程。",
    "住户反映楼上住户晚间噪音较大，影响休息，已与楼上住户沟通，对方表示会注意。",
    "核实了家庭人口信息，新增一名新生儿，已提醒家长及时办理户口登记和疫苗接种。",
    "老人患有高血压和糖尿病，按时服药，社区医生每月上门随访一次，近期指标基本平稳。",
    "了解到租户未办理居住登记，已告知相关规定并协助其在网上完成登记手续。",
    "电动车在楼道内充电，存在较大火灾隐患，已当面劝导并告知小区集中充电桩的位置。",
];

const CONCERNS: &[&str] = &[
    "路灯不亮",
    "楼道杂物堆放",
    "停车难",
    "噪音扰民",
    "下水道堵塞",
    "电动车充电难",
    "老人就医不便",
    "垃圾清运不及时",
    "宠物扰民",
    "屋顶漏水",
    "就业需求",
    "子女入学咨询",
];

const SURNAMES: &[char] =
    &['王', '李', '张', '刘', '陈', '杨', '黄', '赵', '吴', '周', '徐', '孙', '马', '朱', '胡', '郭'];
const GIVEN: &[char] =
    &['伟', '芳', '娜', '敏', '静', '丽', '强', '磊', '军', '洋', '勇', '艳', '杰', '娟', '涛', '明'];

/// About `chars` characters of visit notes, in whole sentences, each tied to
/// a date, an address and a resident as grid managers write them.
pub fn visit_notes(rng: &mut impl Rng, chars: usize) -> String {
    let mut notes = String::new();
    while notes.chars().count() < chars {
        let surname = SURNAMES.choose(rng).copied().unwrap_or('王');
        let given = GIVEN.choose(rng).copied().unwrap_or('伟');
        notes.push_str(&format!(
            "{}月{}日，{}号楼{}单元{}室{}{}：",
            rng.random_range(1..=12),
            rng.random_range(1..=28),
            rng.random_range(1..=40),
            rng.random_range(1..=6),
            rng.random_range(101..=1802),
            surname,
            given,
        ));
        notes.push_str(SENTENCES.choose(rng).copied().unwrap_or_default());
    }
    notes
}

/// A routine home visit as a grid manager records it: ~600 characters of notes,
/// 2–3 concerns, a position inside the city.
pub fn visit(rng: &mut impl Rng, visited_at: i64) -> VisitFields {
    let n = rng.random_range(2..=3);
    VisitFields {
        household: None,
        visited_at,
        kind: Some(VisitKind::Routine),
        location: Some(GeoPoint {
            lat: 30.92 + rng.random_range(0.0..0.05),
            lon: 113.91 + rng.random_range(0.0..0.05),
            accuracy_m: Some(rng.random_range(5.0..30.0)),
        }),
        notes: visit_notes(rng, 600),
        concerns: CONCERNS.choose_multiple(rng, n).map(|c| c.to_string()).collect(),
        findings: String::new(),
    }
}
