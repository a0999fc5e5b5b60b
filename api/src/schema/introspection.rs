//! Standard introspection: the query graphql-js's `getIntrospectionQuery()`
//! builds (what GraphiQL's docs explorer, codegen tools and API clients
//! send) nests `ofType` nine levels deep, past the depth limit of ordinary
//! queries. An operation that selects nothing but introspection fields
//! (`__schema`, `__type`, `__typename`, directly or through fragments) runs
//! with a deeper limit; introspection reaches only the schema's own
//! description, never data, so this opens no way around the limits of
//! ordinary queries, which keep theirs (complexity is limited for both).

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

/// Deepest introspection-only operation accepted.
pub const MAX_DEPTH: usize = 24;

const INTROSPECTION_FIELDS: [&str; 3] = ["__schema", "__type", "__typename"];

/// Whether every operation of `document` selects only introspection fields
/// at its top level. (A query that does not parse is not introspection: the
/// ordinary schema answers it with its parse error.)
pub fn selects_only_introspection(document: &ExecutableDocument) -> bool {
    let mut operations = document.operations.iter().peekable();
    if operations.peek().is_none() {
        return false;
    }
    operations
        .all(|(_, operation)| only_introspection(document, &operation.node.selection_set.node, 0))
}

fn only_introspection(document: &ExecutableDocument, set: &SelectionSet, nesting: usize) -> bool {
    // Fragments may only nest so far (a cycle is refused by validation anyway).
    if nesting > 16 || set.items.is_empty() {
        return false;
    }
    set.items.iter().all(|item| match &item.node {
        Selection::Field(field) => INTROSPECTION_FIELDS.contains(&field.node.name.node.as_str()),
        Selection::InlineFragment(fragment) => {
            only_introspection(document, &fragment.node.selection_set.node, nesting + 1)
        }
        Selection::FragmentSpread(spread) => document
            .fragments
            .get(&spread.node.fragment_name.node)
            .is_some_and(|fragment| {
                only_introspection(document, &fragment.node.selection_set.node, nesting + 1)
            }),
    })
}

#[cfg(test)]
mod tests {
    fn selects_only_introspection(query: &str) -> bool {
        async_graphql::parser::parse_query(query)
            .is_ok_and(|document| super::selects_only_introspection(&document))
    }

    #[test]
    fn only_operations_that_select_nothing_but_introspection_qualify() {
        for yes in [
            "{ __schema { types { name } } }",
            "query { __type(name: \"Order\") { name } __typename }",
            "query Q { ...S } fragment S on Query { __schema { queryType { name } } }",
            "{ ... on Query { __typename } }",
        ] {
            assert!(selects_only_introspection(yes), "{yes}");
        }
        for no in [
            "{ __schema { types { name } } order(id: \"o\") { status } }",
            "query Q { ...S } fragment S on Query { order(id: \"o\") { status } }",
            "query A { __typename } query B { projections { name } }",
            "mutation { __typename placeOrder(input: {}) { version } }",
            "{ ...Missing }",
            "not graphql",
            "",
        ] {
            assert!(!selects_only_introspection(no), "{no}");
        }
    }
}
