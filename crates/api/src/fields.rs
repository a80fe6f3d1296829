//! "Did you mean" for unknown fields: the field of a struct a misspelt
//! name was most likely meant to be (the struct's fields come from
//! `schema::structs`).

/// The field of `fields` that `typo` was most likely meant to be.
pub fn closest<'a>(fields: &[&'a str], typo: &str) -> Option<&'a str> {
    let lower = typo.to_ascii_lowercase();
    fields
        .iter()
        .find(|f| f.to_ascii_lowercase() == lower)
        .or_else(|| fields.iter().find(|f| crate::extensions::strsim_close(f, typo)))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_finds_its_field() {
        let fields = &["maxRetries", "perTryTimeout"];
        assert_eq!(closest(fields, "perTryTimout"), Some("perTryTimeout"));
        assert_eq!(closest(fields, "MAXRETRIES"), Some("maxRetries"));
        assert_eq!(closest(fields, "something"), None);
    }
}
