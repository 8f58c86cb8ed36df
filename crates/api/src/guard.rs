//! Cheap checks on hostile requests that the other limits do not see: the content type of a
//! GraphQL POST, methods `/graphql` does not serve, and documents with floods of fields or
//! aliases (static complexity counts a thousand `databases` aliases as 2,000, well within its
//! bound, yet each one runs a resolver; and thousands of repeats of one field cost the
//! validation's overlap check dearly before complexity is even computed).

use crate::schema::Code;
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, Selection, SelectionSet,
};
use async_graphql::{ServerError, ServerResult, Variables};
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// `{"errors":[{"message", "extensions":{"code"}}]}` with an HTTP status.
fn refuse(status: StatusCode, code: Code, message: &str) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code.as_str() } }]
    });
    (status, axum::Json(body)).into_response()
}

/// True for `application/json`, with or without parameters (`; charset=utf-8`).
fn is_json(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Lets a GraphQL POST through only with `Content-Type: application/json`; anything else
/// (a form, plain text, none) is `415` with `BAD_USER_INPUT`, before the body is read.
pub(crate) async fn require_json(request: Request, next: Next) -> Response {
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_json);
    if !json {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::BadUserInput,
            "send the request as Content-Type: application/json",
        );
    }
    next.run(request).await
}

/// `405` with `BAD_USER_INPUT` for a method a path does not serve.
pub(crate) async fn method_not_allowed() -> Response {
    refuse(
        StatusCode::METHOD_NOT_ALLOWED,
        Code::BadUserInput,
        "method not allowed: POST /graphql runs GraphQL, GET /graphql serves GraphiQL",
    )
}

/// Bounds the fields and aliases a document may hold, counted as written (each fragment
/// once), right after parsing and before validation. Over either bound the request gets
/// `LIMIT_EXCEEDED`.
pub(crate) struct SelectionLimit {
    pub(crate) max_fields: usize,
    pub(crate) max_aliases: usize,
}

impl ExtensionFactory for SelectionLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(SelectionLimitExtension {
            max_fields: self.max_fields,
            max_aliases: self.max_aliases,
        })
    }
}

struct SelectionLimitExtension {
    max_fields: usize,
    max_aliases: usize,
}

#[derive(Default)]
struct Count {
    fields: usize,
    aliases: usize,
}

fn count(set: &SelectionSet, n: &mut Count) {
    for item in &set.items {
        match &item.node {
            Selection::Field(f) => {
                n.fields += 1;
                if f.node.alias.is_some() {
                    n.aliases += 1;
                }
                count(&f.node.selection_set.node, n);
            }
            Selection::FragmentSpread(_) => {}
            Selection::InlineFragment(f) => count(&f.node.selection_set.node, n),
        }
    }
}

/// Fields and aliases of a whole document, as written.
fn document_count(doc: &ExecutableDocument) -> Count {
    let mut n = Count::default();
    match &doc.operations {
        DocumentOperations::Single(op) => count(&op.node.selection_set.node, &mut n),
        DocumentOperations::Multiple(ops) => {
            for op in ops.values() {
                count(&op.node.selection_set.node, &mut n);
            }
        }
    }
    for fragment in doc.fragments.values() {
        count(&fragment.node.selection_set.node, &mut n);
    }
    n
}

fn limit_error(message: String, key: &str, max: usize) -> ServerError {
    let mut error = ServerError::new(message, None);
    let extensions = error.extensions.get_or_insert_with(Default::default);
    extensions.set("code", Code::LimitExceeded.as_str());
    extensions.set(key, max as u64);
    error
}

#[async_graphql::async_trait::async_trait]
impl Extension for SelectionLimitExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        let n = document_count(&doc);
        if n.aliases > self.max_aliases {
            return Err(limit_error(
                format!(
                    "the query has {} aliases, more than the {} allowed",
                    n.aliases, self.max_aliases
                ),
                "maxAliases",
                self.max_aliases,
            ));
        }
        if n.fields > self.max_fields {
            return Err(limit_error(
                format!(
                    "the query selects {} fields, more than the {} allowed",
                    n.fields, self.max_fields
                ),
                "maxFields",
                self.max_fields,
            ));
        }
        Ok(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            " application/json ",
        ] {
            assert!(is_json(ok), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/jsonx",
            "application/x-www-form-urlencoded",
            "",
        ] {
            assert!(!is_json(bad), "{bad}");
        }
    }

    #[test]
    fn fields_and_aliases_are_counted_as_written() {
        let doc = async_graphql::parser::parse_query(
            "query { a: databases { id } b: databases { id ...F } ... on Query { c: databases { id } } } \
             fragment F on Database { id accountCount }",
        )
        .expect("parses");
        let n = document_count(&doc);
        assert_eq!((n.fields, n.aliases), (8, 3));
    }
}
