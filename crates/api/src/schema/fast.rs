//! A synchronous executor for the hottest read: `person(login: | email: | id:)` with the
//! person's plain fields, accounts, groups and reach.
//!
//! async-graphql resolves every field of every object as a future, builds the answer as a tree
//! of values and serializes that tree: for a person with ten accounts, fifty groups and fifty
//! grants that is several hundred futures and allocations, and it was about nine tenths of the
//! cost of the request. Here the same answer is written as JSON straight from the graph, in
//! selection order, with no futures and no intermediate tree.
//!
//! It is a fast path, not a second implementation of the API: it takes only documents it can
//! prove valid and answer exactly as async-graphql would, and returns `None` for everything
//! else, which then runs through async-graphql as before. It falls back on fragments,
//! directives, arguments on nested fields, fields it does not know (every type's other fields,
//! such as `evidence` or `members`), repeated response keys, variables with defaults or of other
//! types, anything that would be an error (no person argument, an ambiguous login, a limit
//! reached), and documents within one level of the depth or complexity limits. The test
//! `crates/api/tests/fast_path.rs` checks that its answers equal async-graphql's.

use super::types::grant_access;
use crate::state::Published;
use crate::Limits;
use async_graphql::parser::types::{
    BaseType, DocumentOperations, ExecutableDocument, Field, OperationDefinition, OperationType,
    Selection, SelectionSet,
};
use async_graphql::{Name, Value as ConstValue, Variables};
use std::borrow::Cow;
use std::collections::HashSet;

/// The answer to `doc` as `{"data": ...}` JSON, when this executor can give it.
pub(crate) fn execute(
    doc: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &Variables,
    published: &Published,
    limits: &Limits,
) -> Option<Vec<u8>> {
    let operation = select(doc, operation_name)?;
    if operation.ty != OperationType::Query || !operation.directives.is_empty() {
        return None;
    }
    let vars = Vars::check(operation, variables)?;
    let mut plan = Budget {
        fields: 0,
        max_fields: limits.max_complexity.saturating_sub(1),
        max_depth: limits.max_depth.saturating_sub(1),
    };
    let graph = &*published.graph;
    // Check the whole document before writing anything.
    let mut roots = Vec::new();
    let mut keys = HashSet::new();
    for item in &operation.selection_set.node.items {
        let Selection::Field(field) = &item.node else {
            return None;
        };
        let field = &field.node;
        if !keys.insert(response_key(field)) || !field.directives.is_empty() {
            return None;
        }
        match field.name.node.as_str() {
            "person" => {
                plan.field(1)?;
                if field.selection_set.node.items.is_empty() {
                    return None;
                }
                plan.selection(&field.selection_set.node, Kind::Person, 2)?;
                let person = match lookup(field, &vars)? {
                    Key::Login(l) => one(graph.person_by_login(&l))?,
                    Key::Email(e) => one(graph.person_by_email(&e))?,
                    Key::Id(id) => graph.person(&id),
                };
                roots.push(Root::Person(field, person));
            }
            "__typename" => {
                plan.field(1)?;
                if !field.selection_set.node.items.is_empty() || !field.arguments.is_empty() {
                    return None;
                }
                roots.push(Root::Typename(field));
            }
            _ => return None,
        }
    }
    if !vars.all_used() {
        return None;
    }
    let mut out = Writer {
        buf: Vec::with_capacity(4096),
        nodes: 0,
        max_nodes: limits.max_nodes,
    };
    out.raw(b"{\"data\":{");
    for (i, root) in roots.iter().enumerate() {
        if i > 0 {
            out.raw(b",");
        }
        match root {
            Root::Typename(field) => {
                out.key(field);
                out.string("Query");
            }
            Root::Person(field, person) => {
                out.key(field);
                match person {
                    None => out.raw(b"null"),
                    Some(p) => out.person(&field.selection_set.node, *p)?,
                }
            }
        }
    }
    out.raw(b"}}");
    Some(out.buf)
}

enum Root<'d, 'g> {
    Person(&'d Field, Option<graph::PersonRef<'g>>),
    Typename(&'d Field),
}

fn select<'d>(
    doc: &'d ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<&'d OperationDefinition> {
    if !doc.fragments.is_empty() {
        return None;
    }
    // Validation covers every operation of a document, not only the one run: take documents of
    // exactly one operation.
    let op = match (&doc.operations, operation_name) {
        (DocumentOperations::Single(op), None) => op,
        (DocumentOperations::Multiple(ops), name) if ops.len() == 1 => {
            let (op_name, op) = ops.iter().next()?;
            if name.is_some_and(|n| n != op_name.as_str()) {
                return None;
            }
            op
        }
        _ => return None,
    };
    Some(&op.node)
}

fn response_key(field: &Field) -> &str {
    field
        .alias
        .as_ref()
        .map_or(field.name.node.as_str(), |a| a.node.as_str())
}

/// `Some(the one person)`, `Some(None)` for nobody; `None` (fall back: async-graphql reports the
/// ambiguity) for several.
fn one(found: Vec<graph::PersonRef<'_>>) -> Option<Option<graph::PersonRef<'_>>> {
    match found.as_slice() {
        [] => Some(None),
        [p] => Some(Some(*p)),
        _ => None,
    }
}

enum Key<'a> {
    Login(Cow<'a, str>),
    Email(Cow<'a, str>),
    Id(Cow<'a, str>),
}

/// The one argument of `person`, a string literal or a string variable of the right type.
fn lookup<'a>(field: &'a Field, vars: &Vars<'a>) -> Option<Key<'a>> {
    let [(name, value)] = field.arguments.as_slice() else {
        return None;
    };
    let expected = match name.node.as_str() {
        "login" | "email" => "String",
        "id" => "ID",
        _ => return None,
    };
    // The parser's value type is not exported; resolving it with a marker for variables tells
    // a literal string from a lone variable (a list or object around a variable is neither).
    let mut variable = None;
    let literal = value
        .node
        .clone()
        .into_const_with(|v| {
            variable = Some(v);
            Ok::<_, ()>(ConstValue::Null)
        })
        .ok()?;
    let s: Cow<'a, str> = match (literal, variable) {
        (ConstValue::String(s), None) => Cow::Owned(s),
        (ConstValue::Null, Some(v)) => Cow::Borrowed(vars.use_string(&v, expected)?),
        _ => return None,
    };
    Some(match name.node.as_str() {
        "login" => Key::Login(s),
        "email" => Key::Email(s),
        _ => Key::Id(s),
    })
}

/// The operation's variables: each defined as a nullable or non-null `String` or `ID` without a
/// default and given a string value; each must be used, in a place of its type.
struct Vars<'a> {
    defined: Vec<(&'a str, &'a str, &'a str)>,
    used: std::cell::RefCell<HashSet<&'a str>>,
}

impl<'a> Vars<'a> {
    fn check(operation: &'a OperationDefinition, values: &'a Variables) -> Option<Self> {
        let mut defined = Vec::new();
        for def in &operation.variable_definitions {
            let def = &def.node;
            if def.default_value.is_some() || !def.directives.is_empty() {
                return None;
            }
            let BaseType::Named(ty) = &def.var_type.node.base else {
                return None;
            };
            if ty.as_str() != "String" && ty.as_str() != "ID" {
                return None;
            }
            let name: &Name = &def.name.node;
            let Some(ConstValue::String(value)) = values.get(name) else {
                return None;
            };
            if defined.iter().any(|(n, _, _)| *n == name.as_str()) {
                return None;
            }
            defined.push((name.as_str(), ty.as_str(), value.as_str()));
        }
        // A value for a variable the operation does not define is ignored by async-graphql too.
        Some(Vars {
            defined,
            used: Default::default(),
        })
    }

    fn use_string(&self, name: &Name, expected: &str) -> Option<&'a str> {
        let (n, ty, value) = self.defined.iter().find(|(n, _, _)| *n == name.as_str())?;
        if *ty != expected {
            return None;
        }
        self.used.borrow_mut().insert(n);
        Some(value)
    }

    fn all_used(&self) -> bool {
        self.used.borrow().len() == self.defined.len()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Person,
    Account,
    Group,
    Grant,
    Workspace,
}

/// Whether a field of a type is a scalar (`Some(None)`), an object or list of objects of a kind
/// (`Some(Some(kind))`), or not supported here (`None`).
fn field_kind(kind: Kind, name: &str) -> Option<Option<Kind>> {
    use Kind::*;
    let object = match (kind, name) {
        (_, "__typename") => None,
        (Person, "id" | "displayName" | "logins" | "emails" | "active") => None,
        (Person, "accounts") => Some(Account),
        (Person, "reach") => Some(Grant),
        (
            Account,
            "database" | "userId" | "loginName" | "email" | "firstName" | "lastName"
            | "displayName" | "active" | "userType" | "external",
        ) => None,
        (Account, "groups") => Some(Group),
        (Account, "person") => Some(Person),
        (Group, "database" | "groupId" | "name" | "memberCount") => None,
        (Grant, "database" | "access" | "path" | "via") => None,
        (Grant, "account") => Some(Account),
        (Grant, "group") => Some(Group),
        (Grant, "workspace") => Some(Workspace),
        (Workspace, "database" | "workspaceId" | "id" | "name" | "defaultSecurity") => None,
        _ => return None,
    };
    Some(object)
}

/// Counts fields and depth against the limits, and checks the selection is one this executor
/// supports.
struct Budget {
    fields: usize,
    max_fields: usize,
    max_depth: usize,
}

impl Budget {
    fn field(&mut self, n: usize) -> Option<()> {
        self.fields += n;
        (self.fields < self.max_fields).then_some(())
    }

    fn selection(&mut self, set: &SelectionSet, kind: Kind, depth: usize) -> Option<()> {
        if depth >= self.max_depth {
            return None;
        }
        let mut keys = HashSet::new();
        for item in &set.items {
            let Selection::Field(field) = &item.node else {
                return None;
            };
            let field = &field.node;
            if !field.arguments.is_empty()
                || !field.directives.is_empty()
                || !keys.insert(response_key(field))
            {
                return None;
            }
            self.field(1)?;
            let children = &field.selection_set.node;
            match field_kind(kind, field.name.node.as_str())? {
                None if children.items.is_empty() => {}
                Some(child) if !children.items.is_empty() => {
                    self.selection(children, child, depth + 1)?
                }
                _ => return None,
            }
        }
        Some(())
    }
}

/// Whether a byte of a string must be escaped in JSON: control characters, `"` and `\`.
/// (serde_json escapes exactly these; other bytes, UTF-8 included, are copied.)
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// JSON output, with the request's list-item budget.
struct Writer {
    buf: Vec<u8>,
    nodes: usize,
    max_nodes: usize,
}

impl Writer {
    fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    fn string(&mut self, s: &str) {
        // Most strings of an answer (ids, names, databases, keys) need no escaping: copied as
        // they are, without serde_json's per-byte writer. The rest take serde_json's escaping.
        if s.bytes().any(needs_escape) {
            // Writing into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut self.buf, s);
        } else {
            self.buf.reserve(s.len() + 2);
            self.buf.push(b'"');
            self.buf.extend_from_slice(s.as_bytes());
            self.buf.push(b'"');
        }
    }

    fn opt_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.raw(b"null"),
        }
    }

    fn bool(&mut self, b: bool) {
        self.raw(if b { b"true" } else { b"false" });
    }

    fn key(&mut self, field: &Field) {
        self.string(response_key(field));
        self.raw(b":");
    }

    /// Counts `n` list items; `None` (fall back: async-graphql reports the limit) past it.
    fn charge(&mut self, n: usize) -> Option<()> {
        self.nodes = self.nodes.saturating_add(n);
        (self.nodes <= self.max_nodes).then_some(())
    }

    fn list<T>(
        &mut self,
        items: impl IntoIterator<Item = T>,
        mut each: impl FnMut(&mut Self, T) -> Option<()>,
    ) -> Option<()> {
        self.raw(b"[");
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.raw(b",");
            }
            each(self, item)?;
        }
        self.raw(b"]");
        Some(())
    }

    fn object(
        &mut self,
        set: &SelectionSet,
        mut each: impl FnMut(&mut Self, &Field) -> Option<()>,
    ) -> Option<()> {
        self.raw(b"{");
        for (i, item) in set.items.iter().enumerate() {
            let Selection::Field(field) = &item.node else {
                return None;
            };
            if i > 0 {
                self.raw(b",");
            }
            self.key(&field.node);
            each(self, &field.node)?;
        }
        self.raw(b"}");
        Some(())
    }

    fn person(&mut self, set: &SelectionSet, p: graph::PersonRef<'_>) -> Option<()> {
        self.object(set, |w, f| {
            match f.name.node.as_str() {
                "__typename" => w.string("Person"),
                "id" => w.string(p.id()),
                "displayName" => w.opt_string(p.display_name()),
                "logins" => {
                    let v = p.logins();
                    w.charge(v.len())?;
                    w.list(v, |w, s| {
                        w.string(s);
                        Some(())
                    })?;
                }
                "emails" => {
                    let v = p.emails();
                    w.charge(v.len())?;
                    w.list(v, |w, s| {
                        w.string(s);
                        Some(())
                    })?;
                }
                "active" => w.bool(p.is_active_somewhere()),
                "accounts" => {
                    let accounts: Vec<_> = p.accounts().collect();
                    w.charge(accounts.len())?;
                    let set = &f.selection_set.node;
                    w.list(accounts, |w, a| w.account(set, a))?;
                }
                "reach" => {
                    let grants = p.reach();
                    w.charge(grants.len())?;
                    let set = &f.selection_set.node;
                    w.list(grants, |w, g| w.grant(set, &g))?;
                }
                _ => return None,
            }
            Some(())
        })
    }

    fn account(&mut self, set: &SelectionSet, a: graph::AccountRef<'_>) -> Option<()> {
        self.object(set, |w, f| {
            match f.name.node.as_str() {
                "__typename" => w.string("Account"),
                "database" => w.string(a.database()),
                "userId" => w.string(a.user_id()),
                "loginName" => w.opt_string(a.login_name()),
                "email" => w.opt_string(a.email()),
                "firstName" => w.opt_string(a.first_name()),
                "lastName" => w.opt_string(a.last_name()),
                "displayName" => w.opt_string(a.display_name()),
                "active" => w.bool(a.active()),
                "userType" => w.opt_string(a.user_type()),
                "external" => w.bool(a.is_external()),
                "groups" => {
                    let groups: Vec<_> = a.groups().collect();
                    w.charge(groups.len())?;
                    let set = &f.selection_set.node;
                    w.list(groups, |w, g| w.group(set, g))?;
                }
                "person" => w.person(&f.selection_set.node, a.person())?,
                _ => return None,
            }
            Some(())
        })
    }

    fn group(&mut self, set: &SelectionSet, g: graph::GroupRef<'_>) -> Option<()> {
        self.object(set, |w, f| {
            match f.name.node.as_str() {
                "__typename" => w.string("Group"),
                "database" => w.string(g.database()),
                "groupId" => w.string(g.group_id()),
                "name" => w.opt_string(g.name()),
                "memberCount" => {
                    let n = g.member_count().to_string();
                    w.raw(n.as_bytes());
                }
                _ => return None,
            }
            Some(())
        })
    }

    fn grant(&mut self, set: &SelectionSet, g: &graph::Grant<'_>) -> Option<()> {
        self.object(set, |w, f| {
            match f.name.node.as_str() {
                "__typename" => w.string("Grant"),
                "database" => w.string(g.database()),
                "access" => w.string(grant_access(g)),
                "path" => {
                    let path = g.path();
                    w.list(path, |w, s| {
                        w.string(&s);
                        Some(())
                    })?;
                }
                "via" => w.opt_string(g.via.map(|v| match v {
                    graph::Via::Explicit => "EXPLICIT",
                    graph::Via::Group => "GROUP",
                    graph::Via::Default => "DEFAULT",
                })),
                "account" => w.account(&f.selection_set.node, g.account)?,
                "group" => match g.group {
                    Some(group) => w.group(&f.selection_set.node, group)?,
                    None => w.raw(b"null"),
                },
                "workspace" => match g.workspace {
                    Some(ws) => w.workspace(&f.selection_set.node, ws)?,
                    None => w.raw(b"null"),
                },
                _ => return None,
            }
            Some(())
        })
    }

    fn workspace(&mut self, set: &SelectionSet, ws: graph::WorkspaceRef<'_>) -> Option<()> {
        self.object(set, |w, f| {
            match f.name.node.as_str() {
                "__typename" => w.string("Workspace"),
                "database" => w.string(ws.database()),
                "workspaceId" | "id" => w.string(ws.workspace_id()),
                "name" => w.opt_string(ws.name()),
                "defaultSecurity" => w.string(ws.default_security().as_str()),
                _ => return None,
            }
            Some(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Writer;

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        let cases = [
            "",
            "plain",
            "Sophie Williams",
            "quote \" inside",
            "back\\slash",
            "tab\there, newline\n, return\r",
            "\u{0}\u{1}\u{1f}",
            "del \u{7f} stays",
            "é ü 東京 🚀",
            "\\\"",
        ];
        for s in cases {
            let mut w = Writer {
                buf: Vec::new(),
                nodes: 0,
                max_nodes: 0,
            };
            w.string(s);
            let expected = serde_json::to_string(s).unwrap();
            assert_eq!(String::from_utf8(w.buf).unwrap(), expected, "{s:?}");
        }
    }
}
