//! The GraphQL contract: every type, field, argument, input field and enum
//! value of `../shared/schema.graphql` (and of the parts of
//! `../shared/schema-next.graphql` built so far) exists in the served schema with the
//! same type; and the served SDL matches its committed snapshot
//! (`api/schema.snapshot.graphql`; ORDERSTORE_WRITE_SNAPSHOTS=1 writes the new
//! one and still fails, and never under CI).

use std::collections::BTreeMap;
use std::path::Path;

use async_graphql::parser::parse_schema;
use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};

/// An input's type with its default, e.g. `Int = 100`.
fn input_type(value: &async_graphql::parser::types::InputValueDefinition) -> String {
    match &value.default_value {
        Some(default) => format!("{} = {}", value.ty.node, default.node),
        None => value.ty.node.to_string(),
    }
}

/// type name -> member name -> type (fields, arguments as `field(arg)`, input fields, enum values).
fn members(sdl: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let document = parse_schema(sdl).unwrap();
    let mut out = BTreeMap::new();
    for definition in document.definitions {
        let TypeSystemDefinition::Type(ty) = definition else {
            continue;
        };
        let mut members = BTreeMap::new();
        match &ty.node.kind {
            TypeKind::Object(object) => {
                for field in &object.fields {
                    let name = field.node.name.node.to_string();
                    for argument in &field.node.arguments {
                        members.insert(
                            format!("{name}({})", argument.node.name.node),
                            input_type(&argument.node),
                        );
                    }
                    members.insert(name, field.node.ty.node.to_string());
                }
            }
            TypeKind::InputObject(input) => {
                for field in &input.fields {
                    members.insert(field.node.name.node.to_string(), input_type(&field.node));
                }
            }
            TypeKind::Enum(values) => {
                for value in &values.values {
                    members.insert(value.node.value.node.to_string(), String::new());
                }
            }
            _ => {}
        }
        out.insert(ty.node.name.node.to_string(), members);
    }
    out
}

/// The contract's members: `../shared/schema.graphql` and
/// `../shared/schema-next.graphql` (its `extend type`s add members).
pub fn contract_members() -> BTreeMap<String, BTreeMap<String, String>> {
    let read = |file: &str| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared")
            .join(file);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("the contract {} is missing: {e}", path.display()))
    };
    let mut contract = members(&read("schema.graphql"));
    // All of it is built now: trace, sinks, SinkStatus, the trace context.
    for (type_name, added) in members(&read("schema-next.graphql")) {
        contract.entry(type_name).or_default().extend(added);
    }
    contract
}

/// Every contract member that `served` lacks or types otherwise.
pub fn breaches_of_the_contract(
    served: &BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (type_name, expected) in contract_members() {
        let Some(actual) = served.get(&type_name) else {
            problems.push(format!("type {type_name} is missing"));
            continue;
        };
        for (member, ty) in expected {
            match actual.get(&member) {
                None => problems.push(format!("{type_name}.{member} is missing")),
                Some(found) if *found != ty => problems.push(format!(
                    "{type_name}.{member} is {found}, the contract says {ty}"
                )),
                Some(_) => {}
            }
        }
    }
    problems
}

#[test]
fn the_served_schema_keeps_every_name_and_type_of_the_contract() {
    let served = members(&api::schema::sdl());
    let problems = breaches_of_the_contract(&served);
    assert!(
        problems.is_empty(),
        "the served schema breaks the contract:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_served_schema_matches_its_snapshot() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("api/schema.snapshot.graphql");
    let sdl = api::schema::sdl();
    let snapshot = std::fs::read_to_string(&path).unwrap_or_default();
    if snapshot == sdl {
        return;
    }
    // A developer may ask for the new snapshot; CI never rewrites it, and
    // even then the test fails, so a changed schema is always reviewed.
    let rewrite = std::env::var_os("ORDERSTORE_WRITE_SNAPSHOTS").is_some()
        && std::env::var_os("CI").is_none();
    if rewrite {
        std::fs::write(&path, &sdl).unwrap();
    }
    panic!(
        "the schema changed; review it{}",
        if rewrite {
            format!(" (the new one is now in {})", path.display())
        } else {
            format!(
                " and rewrite {} with ORDERSTORE_WRITE_SNAPSHOTS=1 (not under CI)",
                path.display()
            )
        }
    );
}
