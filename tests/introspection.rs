//! Standard introspection: the exact query graphql-js 16 builds with
//! `getIntrospectionQuery({ inputValueDeprecation: true })` (what GraphiQL's
//! docs explorer, codegen tools and API clients send) is answered, and the
//! client schema it describes holds every name and type of the contract.
//! Ordinary queries keep their depth limit, also next to introspection.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::support::*;

/// Verbatim from graphql-js 16.15.0 (`node -e 'process.stdout.write(
/// require("graphql").getIntrospectionQuery({inputValueDeprecation: true}))'`).
const GRAPHQL_JS_QUERY: &str = include_str!("fixtures/graphql-js-16-introspection-query.graphql");

/// A `__Type` reference as SDL writes it: `[Event!]!`.
fn type_ref(ty: &Value) -> String {
    match ty["kind"].as_str() {
        Some("NON_NULL") => format!("{}!", type_ref(&ty["ofType"])),
        Some("LIST") => format!("[{}]", type_ref(&ty["ofType"])),
        _ => ty["name"].as_str().unwrap().to_owned(),
    }
}

fn input(value: &Value) -> String {
    match value["defaultValue"].as_str() {
        Some(default) => format!("{} = {default}", type_ref(&value["type"])),
        None => type_ref(&value["type"]),
    }
}

/// The client schema an introspection answer describes, in the shape of
/// `schema_contract::members`: type -> member -> type.
fn client_schema(answer: &Value) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for ty in answer["__schema"]["types"].as_array().unwrap() {
        let mut members = BTreeMap::new();
        for field in ty["fields"].as_array().into_iter().flatten() {
            let name = field["name"].as_str().unwrap();
            for argument in field["args"].as_array().unwrap() {
                members.insert(
                    format!("{name}({})", argument["name"].as_str().unwrap()),
                    input(argument),
                );
            }
            members.insert(name.to_owned(), type_ref(&field["type"]));
        }
        for field in ty["inputFields"].as_array().into_iter().flatten() {
            members.insert(field["name"].as_str().unwrap().to_owned(), input(field));
        }
        for value in ty["enumValues"].as_array().into_iter().flatten() {
            members.insert(value["name"].as_str().unwrap().to_owned(), String::new());
        }
        out.insert(ty["name"].as_str().unwrap().to_owned(), members);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standard_introspection_query_describes_the_whole_contract() {
    let s = TestServer::start().await;
    let answer = s.gql(GRAPHQL_JS_QUERY, json!({})).await;
    assert!(answer.get("errors").is_none(), "{answer}");
    let served = client_schema(&answer["data"]);
    let problems = crate::schema_contract::breaches_of_the_contract(&served);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(answer["data"]["__schema"]["queryType"]["name"], "Query");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_next_to_data_keeps_the_ordinary_depth_limit() {
    let s = TestServer::start().await;
    let deep_data = "order(id: \"o-1\") { history { id } }";
    // Introspection alone as deep as graphql-js's TypeRef: answered.
    let nested = "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } } }";
    let alone = s.gql(nested, json!({})).await;
    assert!(alone.get("errors").is_none(), "{alone}");
    // The same next to a data field: the ordinary limit applies to it all.
    let mixed = nested.replacen("{ __schema", &format!("{{ {deep_data} __schema"), 1);
    let refused = s.gql(&mixed, json!({})).await;
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("too deep"),
        "{refused}"
    );
    s.stop().await;
}
