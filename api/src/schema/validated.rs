//! Query documents that passed full validation once, so that later requests
//! of the same document skip the rules that cannot change with new
//! variables.
//!
//! async-graphql's strict validation visits the document with 22 rules on
//! every request: about a fifth of the CPU of a point read (`perf` of
//! `serve` under wrk, BENCHMARKS.md). All but one of those rules look only
//! at the document and the schema. The exception, `ArgumentsOfCorrectType`,
//! checks the values of variables against the types of the arguments they
//! are used in, and validation has already proved that each variable's
//! declared type fits every position it is used in (same named type). So a
//! document that passed strict validation once passes it again with other
//! variables exactly when each value is valid for its variable's declared
//! type, by the scalar's own `is_valid`, as async-graphql checks it. That
//! check is done here; the request then runs in `ValidationMode::Fast`,
//! which still computes and applies the depth and complexity limits with
//! this request's variables.
//!
//! Only what can be checked that way takes the fast path: documents with
//! one query operation whose variables are all of built-in scalar types or
//! of this schema's own scalars, every one given and not null. Anything
//! else (a mutation, an enum or input object variable, a missing or null
//! value, several operations, an operation name that does not match) is
//! validated strictly, as before; the integration test
//! `validated_documents_answer_bad_variables_as_strict_validation_does`
//! compares the two paths' answers.

use std::sync::atomic::{AtomicBool, Ordering};

use async_graphql::parser::types::{
    BaseType, DocumentOperations, ExecutableDocument, OperationType, Type,
};
use async_graphql::{Name, Request, Value};

/// A parsed document, what it needs to take the fast path, and whether it
/// has passed strict validation.
#[derive(Debug)]
pub struct Document {
    pub parsed: ExecutableDocument,
    /// Set when the document is one query operation whose variables can
    /// all be checked here.
    fast_shape: Option<Shape>,
    validated: AtomicBool,
}

/// The only operation's name and its variables' declared types.
#[derive(Debug)]
struct Shape {
    name: Option<Name>,
    variables: Vec<(Name, Type)>,
}

impl Document {
    pub fn new(parsed: ExecutableDocument) -> Self {
        let fast_shape = fast_shape(&parsed);
        Self {
            parsed,
            fast_shape,
            validated: AtomicBool::new(false),
        }
    }

    /// Whether `request` may run without the strict rules: the document
    /// passed them before, and this request's variables are valid for their
    /// declared types.
    pub fn may_skip_strict_rules(&self, request: &Request) -> bool {
        let Some(Shape { name, variables }) = &self.fast_shape else {
            return false;
        };
        if !self.validated.load(Ordering::Acquire) {
            return false;
        }
        let name_matches = match (&request.operation_name, name) {
            (None, _) => true,
            (Some(asked), Some(name)) => asked.as_str() == name.as_str(),
            (Some(_), None) => false,
        };
        name_matches
            && variables.iter().all(|(variable, ty)| {
                request
                    .variables
                    .get(variable)
                    .is_some_and(|value| valid(ty, value))
            })
    }

    /// Records that a request of this document passed strict validation
    /// (it was answered without any error).
    pub fn passed_strict_rules(&self) {
        if self.fast_shape.is_some() {
            self.validated.store(true, Ordering::Release);
        }
    }
}

fn fast_shape(document: &ExecutableDocument) -> Option<Shape> {
    let (name, operation) = match &document.operations {
        DocumentOperations::Single(operation) => (None, operation),
        DocumentOperations::Multiple(operations) if operations.len() == 1 => {
            let (name, operation) = operations.iter().next()?;
            (Some(name.clone()), operation)
        }
        DocumentOperations::Multiple(_) => return None,
    };
    if operation.node.ty != OperationType::Query {
        return None;
    }
    let variables = operation
        .node
        .variable_definitions
        .iter()
        .map(|definition| {
            let ty = &definition.node.var_type.node;
            checkable(ty).then(|| (definition.node.name.node.clone(), ty.clone()))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Shape { name, variables })
}

/// Scalars whose validity is checked here exactly as async-graphql checks
/// it. `DateTime` (chrono's) and `Date` (ours) keep the default `is_valid`,
/// which accepts every value: parsing them at execution is what refuses a
/// bad one, on either path.
const SCALARS: [&str; 7] = [
    "ID", "String", "Int", "Float", "Boolean", "DateTime", "Date",
];

fn checkable(ty: &Type) -> bool {
    match &ty.base {
        BaseType::Named(name) => SCALARS.contains(&name.as_str()),
        BaseType::List(element) => checkable(element),
    }
}

/// async-graphql's `is_valid_input_value` for the types `checkable` admits,
/// except that null, which the strict path handles, is never valid here.
fn valid(ty: &Type, value: &Value) -> bool {
    match (&ty.base, value) {
        (_, Value::Null) => false,
        (BaseType::List(element), Value::List(items)) => items.iter().all(|v| valid(element, v)),
        (BaseType::List(element), single) => valid(element, single),
        (BaseType::Named(name), value) => match name.as_str() {
            "Int" => matches!(value, Value::Number(n) if n.is_i64()),
            "Float" => matches!(value, Value::Number(_)),
            "String" => matches!(value, Value::String(_)),
            "Boolean" => matches!(value, Value::Boolean(_)),
            "ID" => {
                matches!(value, Value::String(_)) || matches!(value, Value::Number(n) if n.is_i64())
            }
            "DateTime" | "Date" => true,
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use async_graphql::{Request, Variables};
    use serde_json::json;

    use super::Document;

    fn document(query: &str) -> Document {
        Document::new(async_graphql::parser::parse_query(query).unwrap())
    }

    fn request(query: &str, variables: serde_json::Value) -> Request {
        Request::new(query).variables(Variables::from_json(variables))
    }

    const ORDER: &str =
        "query($id: ID!, $at: DateTime, $n: Int, $ids: [ID!]) { order(id: $id, asOf: $at) { status } }";

    #[test]
    fn only_a_validated_query_with_valid_variables_skips_the_strict_rules() {
        let d = document(ORDER);
        let good = request(
            ORDER,
            json!({ "id": "o-1", "at": "2026-12-03T00:00:00Z", "n": 3, "ids": ["a", 7] }),
        );
        assert!(!d.may_skip_strict_rules(&good), "not validated yet");
        d.passed_strict_rules();
        assert!(d.may_skip_strict_rules(&good));
        // A single value where a list is declared is coerced, as in async-graphql.
        assert!(d.may_skip_strict_rules(&request(
            ORDER,
            json!({ "id": 5, "at": 1, "n": -2, "ids": "a" })
        )));
        for bad in [
            json!({ "id": "o-1", "at": "x", "n": 3 }), // $ids missing
            json!({ "id": null, "at": "x", "n": 3, "ids": [] }), // null
            json!({ "id": 1.5, "at": "x", "n": 3, "ids": [] }), // ID: not an integer
            json!({ "id": true, "at": "x", "n": 3, "ids": [] }),
            json!({ "id": "o", "at": "x", "n": "3", "ids": [] }), // Int: a string
            json!({ "id": "o", "at": "x", "n": 3.5, "ids": [] }),
            json!({ "id": "o", "at": "x", "n": 3, "ids": [null] }),
            json!({ "id": "o", "at": "x", "n": 3, "ids": [["a"]] }),
            json!({ "id": {}, "at": "x", "n": 3, "ids": [] }),
        ] {
            assert!(
                !d.may_skip_strict_rules(&request(ORDER, bad.clone())),
                "{bad}"
            );
        }
        let named =
            request(ORDER, json!({ "id": "o", "at": "x", "n": 3, "ids": [] })).operation_name("Q");
        assert!(
            !d.may_skip_strict_rules(&named),
            "the document's operation has no name"
        );
    }

    #[test]
    fn mutations_other_variable_types_and_several_operations_are_always_validated_strictly() {
        for query in [
            "mutation($id: ID!) { cancelOrder(input: { orderId: $id }) { version } }",
            "query($s: OrderStatus) { __typename }",
            "query($i: PlaceOrderInput) { __typename }",
            "query A { __typename } query B { __typename }",
        ] {
            let d = document(query);
            d.passed_strict_rules();
            assert!(
                !d.may_skip_strict_rules(&request(
                    query,
                    json!({ "id": "o", "s": "PLACED", "i": {} })
                )),
                "{query}"
            );
        }
        let named = "query Point($id: ID!) { order(id: $id) { status } }";
        let d = document(named);
        d.passed_strict_rules();
        assert!(d.may_skip_strict_rules(&request(named, json!({ "id": "o" }))));
        assert!(
            d.may_skip_strict_rules(&request(named, json!({ "id": "o" })).operation_name("Point"))
        );
        assert!(
            !d.may_skip_strict_rules(&request(named, json!({ "id": "o" })).operation_name("Other"))
        );
    }
}
