//! Every field path a kind accepts, read from its types: what `weft explain`
//! lists and what the field-coverage test holds against the coverage table.
//!
//! serde's derived `Deserialize` names all of a struct's fields when it asks
//! for a struct. `Walk` is a deserializer whose structs are empty except for
//! one planned field each (lists have one item, maps one key, `*`), so a pass
//! records the fields of the structs along one path; a pass per field
//! reaches every struct. A field
//! whose type cannot be built from the walk's placeholder values (a custom
//! parser) ends its own pass only: its name is already recorded.

use crate::tree::Seg;
use serde::de::value::{Error, MapDeserializer, SeqDeserializer, StrDeserializer};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// Struct paths (`spec.http[].route[]`) to the field names of the struct there.
pub type Structs = BTreeMap<String, &'static [&'static str]>;

/// How deep a path may go: Istio's types nest about 8 levels.
const MAX_DEPTH: usize = 16;

/// Every struct of `T` by its path (`spec.http[]`), with its field names.
pub fn structs<T: DeserializeOwned>() -> Structs {
    let mut structs = Structs::new();
    let mut plans: Vec<Vec<&'static str>> = vec![Vec::new()];
    while let Some(plan) = plans.pop() {
        let seen = RefCell::new(Vec::new());
        let _ = T::deserialize(Walk { path: String::new(), plan: &plan, seen: &seen });
        // Structs met along the plan, in depth order: the one past its end is new.
        for (depth, (path, fields)) in seen.into_inner().into_iter().enumerate() {
            if depth == plan.len() && !structs.contains_key(&path) && plan.len() < MAX_DEPTH {
                plans.extend(fields.iter().map(|f| plan.iter().copied().chain([*f]).collect::<Vec<_>>()));
            }
            structs.entry(path).or_insert(fields);
        }
    }
    structs
}

/// Every field path of the structs, written `spec.http[].match[].headers.*.exact`:
/// `[]` stands for any list index, `*` for any key of a map.
pub fn field_paths(structs: &Structs) -> Vec<String> {
    let mut out: Vec<String> = structs
        .iter()
        .flat_map(|(path, fields)| {
            fields.iter().map(move |f| if path.is_empty() { f.to_string() } else { format!("{path}.{f}") })
        })
        .collect();
    out.sort();
    out
}

/// The pattern of a document's path (`spec.http[0].match[1].headers.x-user`
/// → `spec.http[].match[].headers.*`): a key is a field where the path is a
/// struct that has it, else an entry of a map. None when a key is neither
/// (a field the type does not have).
pub fn pattern(structs: &Structs, path: &[Seg]) -> Option<String> {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Index(_) => out.push_str("[]"),
            Seg::Key(k) => {
                let key = match structs.get(&out) {
                    Some(fields) if fields.contains(&k.as_str()) => k.as_str(),
                    Some(_) => return None,
                    None => "*",
                };
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
        }
    }
    Some(out)
}

struct Walk<'a> {
    path: String,
    /// The fields still to descend into, one per struct.
    plan: &'a [&'static str],
    /// (path, fields) of each struct met, in the order met.
    seen: &'a RefCell<Vec<(String, &'static [&'static str])>>,
}

impl<'a> Walk<'a> {
    fn at(&self, suffix: &str) -> Walk<'a> {
        Walk { path: format!("{}{suffix}", self.path), plan: self.plan, seen: self.seen }
    }
}

impl<'de> IntoDeserializer<'de, Error> for Walk<'_> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> de::Deserializer<'de> for Walk<'_> {
    type Error = Error;

    /// A value of a type that says nothing of its shape (untagged enums,
    /// hand-written parsers): zero, which a number or nothing else takes.
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_u64(0)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_bool(false)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_str("")
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_str("")
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_f64(0.0)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(SeqDeserializer::new(std::iter::once(self.at("[]"))))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_map(MapDeserializer::new(std::iter::once(("*", self.at(".*")))))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.seen.borrow_mut().push((self.path.clone(), fields));
        let entries: Vec<(&str, Walk<'_>)> = match self.plan.split_first() {
            Some((field, rest)) => {
                let path = if self.path.is_empty() { field.to_string() } else { format!("{}.{field}", self.path) };
                vec![(*field, Walk { path, plan: rest, seen: self.seen })]
            }
            None => Vec::new(),
        };
        visitor.visit_map(MapDeserializer::new(entries.into_iter()))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_enum(StrDeserializer::<Error>::new(variants.first().copied().unwrap_or_default()))
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 char
        bytes byte_buf unit unit_struct tuple tuple_struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::HashMap;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    #[serde(rename_all = "camelCase")]
    struct Outer {
        name: String,
        inner: Option<Vec<Inner>>,
        by_name: HashMap<String, Inner>,
        after: Option<Inner>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    #[serde(rename_all = "camelCase")]
    struct Inner {
        max_retries: Option<u32>,
        /// A type the walk cannot build: its siblings are still found.
        #[serde(deserialize_with = "never")]
        picky: u32,
        deep: Option<Box<Leaf>>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Leaf {
        x: bool,
    }

    fn never<'de, D: de::Deserializer<'de>>(_: D) -> Result<u32, D::Error> {
        Err(de::Error::custom("no"))
    }

    #[test]
    fn every_field_of_every_nested_struct_is_found() {
        let paths = field_paths(&structs::<Outer>());
        for p in [
            "after",
            "after.deep.x",
            "after.picky",
            "byName",
            "byName.*.deep.x",
            "byName.*.maxRetries",
            "inner",
            "inner[].deep",
            "inner[].deep.x",
            "inner[].maxRetries",
            "inner[].picky",
            "name",
        ] {
            assert!(paths.contains(&p.to_owned()), "{p} missing from {paths:?}");
        }
    }

    #[test]
    fn a_documents_path_has_the_pattern_of_its_struct() {
        let s = structs::<Outer>();
        let at = |p: &[Seg]| pattern(&s, p);
        let (k, i) = (|k: &str| Seg::Key(k.into()), Seg::Index);
        assert_eq!(at(&[k("inner"), i(1)]).as_deref(), Some("inner[]"));
        assert_eq!(s[&at(&[k("inner"), i(1)]).unwrap()], &["maxRetries", "picky", "deep"]);
        assert_eq!(at(&[k("byName"), k("anyone"), k("deep")]).as_deref(), Some("byName.*.deep"));
        assert_eq!(at(&[k("inner"), i(0), k("typo")]), None);
    }
}
