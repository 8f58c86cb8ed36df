//! String interning: every string of the graph lives once in one arena and is named by a `Sym`.
//!
//! One arena with `u32` offsets costs a few bytes per string instead of a `String` header (24
//! bytes) plus an allocation each, which is what keeps a million accounts inside the memory
//! budget. The dedupe table stores only the `u32` ids and hashes through the arena.

use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;

/// An interned string; [`Sym::NONE`] stands for "no value".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sym(pub(crate) u32);

impl Sym {
    pub const NONE: Sym = Sym(u32::MAX);

    pub fn is_none(self) -> bool {
        self == Sym::NONE
    }
}

#[derive(Default)]
pub struct Interner {
    arena: String,
    /// `ends[i]` is where string `i` ends in the arena; it starts where `i - 1` ends.
    ends: Vec<u32>,
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl std::fmt::Debug for Interner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interner")
            .field("strings", &self.ends.len())
            .field("bytes", &self.arena.len())
            .finish()
    }
}

impl Interner {
    pub fn get(&self, sym: Sym) -> Option<&str> {
        if sym.is_none() {
            return None;
        }
        let i = sym.0 as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        Some(&self.arena[start..self.ends[i] as usize])
    }

    /// The string of a symbol known to be present.
    pub fn str(&self, sym: Sym) -> &str {
        self.get(sym).unwrap_or("")
    }

    pub fn intern(&mut self, s: &str) -> Sym {
        let hash = self.hasher.hash_one(s);
        let Self {
            arena,
            ends,
            table,
            hasher,
        } = self;
        let lookup = |id: &u32| slice(arena, ends, *id) == s;
        if let Some(id) = table.find(hash, lookup) {
            return Sym(*id);
        }
        let id = ends.len() as u32;
        arena.push_str(s);
        ends.push(arena.len() as u32);
        table.insert_unique(hash, id, |id| hasher.hash_one(slice(arena, ends, *id)));
        Sym(id)
    }

    /// The hash [`Interner::intern_hashed`] expects for `s`; it can be computed on another
    /// thread with a copy of [`Interner::hasher`].
    pub fn hasher(&self) -> DefaultHashBuilder {
        self.hasher
    }

    /// Interns `s` whose hash under [`Interner::hasher`] is `hash`.
    pub fn intern_hashed(&mut self, s: &str, hash: u64) -> Sym {
        let Self {
            arena,
            ends,
            table,
            hasher,
        } = self;
        if let Some(id) = table.find(hash, |id: &u32| slice(arena, ends, *id) == s) {
            return Sym(*id);
        }
        let id = ends.len() as u32;
        arena.push_str(s);
        ends.push(arena.len() as u32);
        table.insert_unique(hash, id, |id| hasher.hash_one(slice(arena, ends, *id)));
        Sym(id)
    }

    /// Stores `s` without deduplicating it: for values that are nearly all distinct (user ids,
    /// emails, display names), where the dedupe table would cost more than it saves. Such a
    /// symbol is not found by [`Interner::lookup`].
    pub fn push(&mut self, s: &str) -> Sym {
        let id = self.ends.len() as u32;
        self.arena.push_str(s);
        self.ends.push(self.arena.len() as u32);
        Sym(id)
    }

    /// Appends strings stored elsewhere (an arena and its end offsets, as in this type) without
    /// deduplicating them; string `i` of the chunk becomes symbol `base + i`, `base` returned.
    pub fn append_chunk(&mut self, arena: &str, ends: &[u32]) -> u32 {
        let base = self.ends.len() as u32;
        let offset = self.arena.len() as u32;
        self.arena.push_str(arena);
        self.ends.extend(ends.iter().map(|e| e + offset));
        base
    }

    /// [`Interner::append_chunk`], taking the buffers over instead of copying them when the
    /// interner is still empty.
    pub fn adopt(&mut self, arena: String, ends: Vec<u32>) -> u32 {
        if self.ends.is_empty() && self.table.is_empty() {
            self.arena = arena;
            self.ends = ends;
            0
        } else {
            self.append_chunk(&arena, &ends)
        }
    }

    /// Makes room for `strings` more strings of `bytes` bytes in all, `deduped` of them in the
    /// dedupe table.
    pub fn reserve(&mut self, strings: usize, bytes: usize, deduped: usize) {
        self.arena.reserve(bytes);
        self.ends.reserve(strings);
        let Self {
            arena,
            ends,
            table,
            hasher,
        } = self;
        table.reserve(deduped, |id| hasher.hash_one(slice(arena, ends, *id)));
    }

    pub fn intern_opt(&mut self, s: Option<&str>) -> Sym {
        match s {
            Some(s) => self.intern(s),
            None => Sym::NONE,
        }
    }

    /// The symbol of a string, without adding it.
    pub fn lookup(&self, s: &str) -> Option<Sym> {
        let hash = self.hasher.hash_one(s);
        self.table
            .find(hash, |id| slice(&self.arena, &self.ends, *id) == s)
            .map(|id| Sym(*id))
    }

    /// Bytes held, for the memory estimate.
    pub fn heap_bytes(&self) -> usize {
        self.arena.capacity() + self.ends.capacity() * 4 + self.table.capacity() * 5
    }

    /// Gives back spare capacity. The dedupe table is only rebuilt when it is mostly empty
    /// (rebuilding rehashes every entry).
    pub fn shrink_to_fit(&mut self) {
        self.arena.shrink_to_fit();
        self.ends.shrink_to_fit();
        if self.table.capacity() <= 4 * self.table.len() + 64 {
            return;
        }
        let Self {
            arena,
            ends,
            table,
            hasher,
        } = self;
        table.shrink_to_fit(|id| hasher.hash_one(slice(arena, ends, *id)));
    }
}

fn slice<'a>(arena: &'a str, ends: &[u32], id: u32) -> &'a str {
    let i = id as usize;
    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
    &arena[start..ends[i] as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_once() {
        let mut i = Interner::default();
        let a = i.intern("alpha");
        let b = i.intern("beta");
        assert_eq!(i.intern("alpha"), a);
        assert_ne!(a, b);
        assert_eq!(i.str(a), "alpha");
        assert_eq!(i.str(b), "beta");
        assert_eq!(i.lookup("beta"), Some(b));
        assert_eq!(i.lookup("gamma"), None);
        assert_eq!(i.get(Sym::NONE), None);
        let e = i.intern("");
        assert_eq!(i.str(e), "");
    }
}
