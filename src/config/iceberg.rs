//! `[iceberg]`: the Apache Iceberg table Strata keeps over the archive's data
//! files (see [`crate::iceberg`]), and the catalog it is registered in.

use serde::Deserialize;

use super::values::Secret;

/// Which catalog holds the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Catalog {
    /// The table is its files: `<prefix>/_strata/iceberg/metadata/vN.metadata.json`
    /// and `version-hint.text`; readers open the metadata file.
    #[default]
    File,
    /// An Iceberg REST catalog at `uri` (not yet supported: Strata says so
    /// when it starts).
    Rest,
}

/// `[iceberg]`: the table and its catalog.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IcebergConfig {
    /// Keep the Iceberg table (default true): a snapshot with every commit.
    pub enabled: bool,
    /// `"file"` (default) or `"rest"`.
    pub catalog: Catalog,
    /// REST: the catalog's base URL, e.g. `http://localhost:8181`.
    pub uri: String,
    /// REST: the warehouse name or location the catalog expects (may be empty).
    pub warehouse: String,
    /// REST: the namespace of the table (default `strata`).
    pub namespace: String,
    /// REST: the table's name (default `archive`).
    pub table: String,
    /// REST: OAuth2 client credential `client_id:client_secret` (empty: none).
    pub credential: Secret,
    /// REST: a bearer token (empty: none).
    pub token: Secret,
}

impl Default for IcebergConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            catalog: Catalog::File,
            uri: String::new(),
            warehouse: String::new(),
            namespace: "strata".to_string(),
            table: "archive".to_string(),
            credential: Secret::default(),
            token: Secret::default(),
        }
    }
}

impl IcebergConfig {
    /// Checks the rules of this table.
    pub(super) fn validate(&self) -> Result<(), String> {
        if self.catalog == Catalog::Rest && self.uri.trim().is_empty() {
            return Err(
                "[iceberg] catalog = \"rest\" needs [iceberg] uri, the catalog's base URL \
                 (e.g. \"http://localhost:8181\"), or use catalog = \"file\""
                    .to_string(),
            );
        }
        if self.catalog == Catalog::Rest
            && !(self.uri.starts_with("http://") || self.uri.starts_with("https://"))
        {
            return Err(format!(
                "[iceberg] uri {:?} must start with http:// or https://",
                self.uri
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{parse, parse_err};
    use super::*;

    #[test]
    fn defaults_and_keys() {
        let c = parse("").unwrap();
        assert!(c.iceberg.enabled);
        assert_eq!(c.iceberg.catalog, Catalog::File);
        let c = parse(
            "[iceberg]\nenabled = false\ncatalog = \"rest\"\nuri = \"http://localhost:8181\"\n\
             warehouse = \"w\"\nnamespace = \"n\"\ntable = \"t\"\ncredential = \"id:secret\"\n\
             token = \"tok\"\n",
        )
        .unwrap();
        assert!(!c.iceberg.enabled);
        assert_eq!(c.iceberg.catalog, Catalog::Rest);
        assert_eq!(c.iceberg.credential.expose(), "id:secret");
        assert!(!format!("{:?}", c.iceberg).contains("id:secret"));
        assert!(!format!("{:?}", c.iceberg).contains("tok\""));
    }

    #[test]
    fn bad_values_say_what_to_do() {
        let e = parse_err("[iceberg]\ncatalog = \"glue\"\n");
        assert!(e.contains("[iceberg] catalog"), "{e}");
        assert!(e.contains("file") && e.contains("rest"), "{e}");
        let e = parse_err("[iceberg]\ncatalog = \"rest\"\n");
        assert!(e.contains("[iceberg] uri"), "{e}");
        let e = parse_err("[iceberg]\ncatalog = \"rest\"\nuri = \"localhost:8181\"\n");
        assert!(e.contains("http://"), "{e}");
    }
}
