//! Packed rows answer as one key per version did: a model of versions
//! against the store, over random puts, marks and batch cuts; a store
//! written one key per version is packed when opened.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;

use super::{ProjectionStore, RowAt, RowKey, StoreBatch, MARK};

/// Row key parts: two-part rows share a group per first part (a
/// customer's orders); one-part rows are a group each.
fn parts(row: u8) -> Vec<String> {
    if row < 12 {
        vec![format!("c{}", row % 3), format!("o{row}")]
    } else {
        vec![format!("o{row}")]
    }
}

fn key_in(table: &'static str, row: u8) -> RowKey {
    let parts = parts(row);
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    RowKey::new(table, &refs)
}

fn time(t: u8) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + i64::from(t), 0).unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    Put { row: u8, at: u8, value: u16 },
    Mark { row: u8 },
    Sequence { order: u16, sequence: u64 },
    Commit,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0u8..16, 0u8..60, any::<u16>()).prop_map(|(row, at, value)| Op::Put { row, at, value }),
        1 => (0u8..16).prop_map(|row| Op::Mark { row }),
        6 => (0u16..300, any::<u64>()).prop_map(|(order, sequence)| Op::Sequence { order, sequence }),
        3 => Just(Op::Commit),
    ]
}

/// What one key per version held: each row's versions and marks.
#[derive(Debug, Default)]
struct Model {
    versions: BTreeMap<u8, BTreeMap<u8, Vec<u8>>>,
    marked: BTreeSet<u8>,
    sequences: BTreeMap<u16, u64>,
}

fn value(row: u8, value: u16) -> Vec<u8> {
    // Values of different sizes, some large, so both limits of a chunk cut.
    let size = usize::from(value % 7) * usize::from(value % 900);
    let mut out = vec![row; size];
    out.extend_from_slice(&value.to_be_bytes());
    out
}

fn run(table: &'static str, ops: &[Op], store: &ProjectionStore, model: &mut Model) {
    let key = |row| key_in(table, row);
    let mut batch = StoreBatch::default();
    for op in ops {
        match op {
            Op::Put { row, at, value: v } => {
                batch.put_row(&key(*row), time(*at), &value(*row, *v));
                model
                    .versions
                    .entry(*row)
                    .or_default()
                    .insert(*at, value(*row, *v));
            }
            Op::Mark { row } => {
                batch.mark_row(&key(*row));
                model.marked.insert(*row);
            }
            Op::Sequence { order, sequence } => {
                batch.set_sequence(&format!("order-{order}"), *sequence);
                model.sequences.insert(*order, *sequence);
            }
            Op::Commit => store.commit(std::mem::take(&mut batch)).unwrap(),
        }
    }
    store.commit(batch).unwrap();
}

fn check(table: &'static str, store: &ProjectionStore, model: &Model) {
    let key = |row| key_in(table, row);
    for order in 0..300u16 {
        assert_eq!(
            store.sequence(&format!("order-{order}")).unwrap(),
            model.sequences.get(&order).copied(),
            "order-{order}"
        );
    }
    let end = DateTime::<Utc>::MAX_UTC;
    let times: Vec<DateTime<Utc>> = (0..=61).map(time).chain([end]).collect();
    for row in 0..16u8 {
        let versions = model.versions.get(&row);
        for (i, at) in times.iter().enumerate() {
            let expected = versions.and_then(|v| {
                v.range(..=u8::try_from(i).unwrap_or(u8::MAX))
                    .next_back()
                    .map(|(_, value)| value.clone())
            });
            let expected = if *at == end {
                versions.and_then(|v| v.values().next_back().cloned())
            } else {
                expected
            };
            assert_eq!(
                store.row_as_of(&key(row), *at).unwrap(),
                expected,
                "row {row} at {i}"
            );
            let exact = if *at != end && model.marked.contains(&row) {
                RowAt::Marked
            } else {
                match (&expected, versions) {
                    (Some(value), _) => RowAt::Value(value.clone()),
                    (None, Some(v)) if !v.is_empty() => RowAt::NotYet,
                    (None, _) => RowAt::Never,
                }
            };
            assert_eq!(
                store.row_as_of_exact(&key(row), *at).unwrap(),
                exact,
                "row {row} at {i}"
            );
        }
    }
    for prefix in [
        &[""][..],
        &["c1", ""][..],
        &["c1"][..],
        &["o1"][..],
        &["o13"][..],
    ] {
        let joined = prefix.join("\u{1f}");
        let rows: Vec<u8> = model
            .versions
            .keys()
            .copied()
            .filter(|row| key(*row).key.starts_with(joined.as_bytes()))
            .collect();
        let mut in_order: Vec<RowKey> = rows.iter().map(|row| key(*row)).collect();
        in_order.sort();
        assert_eq!(
            store.keys_with_prefix(table, prefix).unwrap(),
            in_order,
            "{prefix:?}"
        );
        for at in &times {
            let mut expected: Vec<(RowKey, Vec<u8>)> = Vec::new();
            for row_key in &in_order {
                if let Some(value) = store.row_as_of(row_key, *at).unwrap() {
                    expected.push((row_key.clone(), value));
                }
            }
            assert_eq!(
                store.rows_as_of_with_prefix(table, prefix, *at).unwrap(),
                expected,
                "{prefix:?} at {at}"
            );
        }
    }
}

/// Runs `ops` against a store and checks it against the model; the same
/// puts in one batch make another store that compares equal.
fn packed_rows_answer_as_the_model(table: &'static str, ops: &[Op]) {
    let dir = tempfile::tempdir().unwrap();
    let store = ProjectionStore::open(dir.path()).unwrap();
    let mut model = Model::default();
    run(table, ops, &store, &mut model);
    check(table, &store, &model);

    // The same puts in one batch make other chunks, and the same store.
    let other_dir = tempfile::tempdir().unwrap();
    let other = ProjectionStore::open(other_dir.path()).unwrap();
    let puts: Vec<Op> = ops
        .iter()
        .filter(|op| !matches!(op, Op::Commit))
        .cloned()
        .collect();
    run(table, &puts, &other, &mut Model::default());
    let comparison = store.compare(&other, 3).unwrap();
    assert_eq!(comparison.different, 0, "{:?}", comparison.differences);
    let logical = model.versions.values().map(BTreeMap::len).sum::<usize>()
        + model.marked.len()
        + model.sequences.len();
    assert_eq!(comparison.entries as usize, logical);

    // Reopened, it answers the same.
    drop(store);
    let store = ProjectionStore::open(dir.path()).unwrap();
    check(table, &store, &model);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn packed_rows_answer_as_one_key_per_version_did(ops in proptest::collection::vec(op(), 1..400)) {
        packed_rows_answer_as_the_model("t", &ops);
    }

    #[test]
    fn rows_packed_across_their_table_answer_as_one_key_per_version_did(ops in proptest::collection::vec(op(), 1..400)) {
        packed_rows_answer_as_the_model(crate::trace::TABLE, &ops);
    }
}

#[test]
fn many_versions_take_few_sled_keys_and_a_difference_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = ProjectionStore::open(dir.path()).unwrap();
    // 200 orders of 5 versions each, one version per batch as a worker writes.
    for version in 0..5u8 {
        for order in 0..200u32 {
            let mut batch = StoreBatch::default();
            let row = RowKey::new("order", &[&format!("order-{order}")]);
            batch.put_row(&row, time(version), &[version; 300]);
            batch.set_sequence(&format!("order-{order}"), u64::from(version));
            store.commit(batch).unwrap();
        }
    }
    let rows = store.tree.scan_prefix([super::ROW]).count();
    assert_eq!(rows, 200, "one sled key per order's state row");
    let sequences = store.tree.scan_prefix([super::SEQUENCE]).count();
    assert!(
        sequences <= 200 / 4,
        "{sequences} sled keys for 200 sequences"
    );

    let other_dir = tempfile::tempdir().unwrap();
    let other = ProjectionStore::open(other_dir.path()).unwrap();
    let mut batch = StoreBatch::default();
    for order in 0..200u32 {
        for version in 0..5u8 {
            let row = RowKey::new("order", &[&format!("order-{order}")]);
            let value = if order == 7 && version == 3 {
                [9; 300]
            } else {
                [version; 300]
            };
            batch.put_row(&row, time(version), &value);
        }
        batch.set_sequence(&format!("order-{order}"), 4);
    }
    other.commit(batch).unwrap();
    let comparison = store.compare(&other, 10).unwrap();
    assert_eq!(comparison.entries, 1_200);
    assert_eq!(comparison.different, 1, "{:?}", comparison.differences);
    assert_eq!(
        comparison.differences[0].key.to_string(),
        format!(
            "row order/order-7 valid from {}",
            domain::envelope::format_time(&time(3))
        )
    );
}

#[test]
fn a_store_written_one_key_per_version_is_packed_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    let versioned = |row: &RowKey, at: u8| row.versioned(time(at));
    let customer = RowKey::new("customer", &["c1", "o1"]);
    let other = RowKey::new("customer", &["c1", "o2"]);
    let marked = RowKey::new("order", &["o1"]);
    {
        // The layout before packed rows: tree `projection`, one key per
        // version, a mark as the row's key with time bytes 0.
        let db = sled::open(dir.path()).unwrap();
        let legacy = db.open_tree("projection").unwrap();
        for at in 1..=20 {
            legacy
                .insert(versioned(&customer, at), vec![at; 10])
                .unwrap();
        }
        legacy
            .insert(versioned(&other, 5), b"other".to_vec())
            .unwrap();
        let mut mark = marked.prefix();
        mark.extend_from_slice(&MARK);
        legacy.insert(mark, Vec::new()).unwrap();
        legacy
            .insert(versioned(&marked, 3), b"m3".to_vec())
            .unwrap();
        legacy
            .insert(
                super::tagged(super::SEQUENCE, &[b"o1"]),
                7u64.to_be_bytes().to_vec(),
            )
            .unwrap();
        db.flush().unwrap();
    }
    let store = ProjectionStore::open(dir.path()).unwrap();
    assert_eq!(
        store.row_as_of(&customer, time(7)).unwrap(),
        Some(vec![7; 10])
    );
    assert_eq!(store.row_as_of(&customer, time(0)).unwrap(), None);
    assert_eq!(
        store
            .rows_as_of_with_prefix("customer", &["c1", ""], time(6))
            .unwrap(),
        vec![
            (customer.clone(), vec![6; 10]),
            (other.clone(), b"other".to_vec())
        ]
    );
    assert_eq!(
        store.row_as_of_exact(&marked, time(4)).unwrap(),
        RowAt::Marked
    );
    assert_eq!(
        store
            .row_as_of_exact(&marked, DateTime::<Utc>::MAX_UTC)
            .unwrap(),
        RowAt::Value(b"m3".to_vec())
    );
    assert_eq!(store.sequence("o1").unwrap(), Some(7));
    // Customer c1's group (21 versions of two rows) in three chunks, order
    // o1's in one, the mark, the sequence.
    assert_eq!(
        store.tree.len(),
        3 + 1 + 1 + 1,
        "{:?}",
        store.tree.iter().keys().collect::<Vec<_>>()
    );
    drop(store);
    let db = sled::open(dir.path()).unwrap();
    assert!(!db
        .tree_names()
        .iter()
        .any(|name| name.as_ref() == b"projection"));
}
