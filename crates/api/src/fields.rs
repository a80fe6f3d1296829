//! The field names a resource's types accept at each path of a document,
//! for "did you mean" hints on unknown fields.
//!
//! serde's derived `Deserialize` passes every struct's field names to
//! `Deserializer::deserialize_struct`; it ignores unknown keys silently.
//! So the document is deserialized once more, only when it has unknown
//! fields, through `Probe`: a deserializer over the document's JSON that
//! notes the field names each struct asks for, at its path. The result is
//! thrown away; deserializing stops at the first type error, which the
//! real pass reports.

use crate::tree::Seg;
use serde::de::value::{MapAccessDeserializer, MapDeserializer, SeqDeserializer, StrDeserializer};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;

/// Field names by the path of the struct that has them.
pub type Known = HashMap<Vec<Seg>, &'static [&'static str]>;

/// The field names `T` accepts at every path of `json` that holds a struct.
pub fn known_fields<T: DeserializeOwned>(json: &Value) -> Known {
    let known = RefCell::new(Known::new());
    let _ = T::deserialize(Probe { value: json, path: Vec::new(), known: &known });
    known.into_inner()
}

/// The field of `fields` that `typo` was most likely meant to be.
pub fn closest<'a>(fields: &[&'a str], typo: &str) -> Option<&'a str> {
    let lower = typo.to_ascii_lowercase();
    fields
        .iter()
        .find(|f| f.to_ascii_lowercase() == lower)
        .or_else(|| fields.iter().find(|f| crate::extensions::strsim_close(f, typo)))
        .copied()
}

#[derive(Clone)]
struct Probe<'a> {
    value: &'a Value,
    path: Vec<Seg>,
    known: &'a RefCell<Known>,
}

type Error = de::value::Error;

impl<'a> Probe<'a> {
    fn child(&self, value: &'a Value, seg: Seg) -> Probe<'a> {
        let mut path = self.path.clone();
        path.push(seg);
        Probe { value, path, known: self.known }
    }

    fn entries(
        &self,
        map: &'a serde_json::Map<String, Value>,
    ) -> MapDeserializer<'a, impl Iterator<Item = (&'a str, Probe<'a>)>, Error> {
        let me = self.clone();
        MapDeserializer::new(map.iter().map(move |(k, v)| (k.as_str(), me.child(v, Seg::Key(k.clone())))))
    }
}

impl<'a> IntoDeserializer<'a, Error> for Probe<'a> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'a> de::Deserializer<'a> for Probe<'a> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => visitor.visit_u64(u),
                (None, Some(i)) => visitor.visit_i64(i),
                _ => visitor.visit_f64(n.as_f64().unwrap_or_default()),
            },
            Value::String(s) => visitor.visit_str(s),
            Value::Array(items) => {
                let children = items.iter().enumerate().map(|(i, v)| self.child(v, Seg::Index(i)));
                visitor.visit_seq(SeqDeserializer::new(children))
            }
            Value::Object(map) => visitor.visit_map(self.entries(map)),
        }
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.known.borrow_mut().insert(self.path.clone(), fields);
        self.deserialize_any(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.value {
            Value::String(s) => visitor.visit_enum(StrDeserializer::<Error>::new(s)),
            Value::Object(map) => visitor.visit_enum(MapAccessDeserializer::new(self.entries(map))),
            _ => self.deserialize_any(visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        <W: Visitor<'a>>
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Option<Vec<Inner>>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    #[serde(rename_all = "camelCase")]
    struct Inner {
        max_retries: Option<u32>,
        per_try_timeout: Option<String>,
    }

    #[test]
    fn structs_are_found_where_the_document_has_them() {
        let json = serde_json::json!({"name": "a", "inner": [{"maxRetries": 1}, {"perTryTimout": "1s"}]});
        let known = known_fields::<Outer>(&json);
        assert_eq!(known[&vec![]], &["name", "inner"]);
        let second = vec![Seg::Key("inner".into()), Seg::Index(1)];
        assert_eq!(known[&second], &["maxRetries", "perTryTimeout"]);
        assert_eq!(closest(known[&second], "perTryTimout"), Some("perTryTimeout"));
        assert_eq!(closest(known[&second], "MAXRETRIES"), Some("maxRetries"));
        assert_eq!(closest(known[&second], "something"), None);
    }
}
