//! `docs/options.md`, generated from the option declarations (a test keeps the file current:
//! `DFT_BLESS=1 cargo test --lib options` rewrites it).

use super::decl::OptionDecl;
use super::scan::SCAN_OPTIONS;

/// The markdown body of `docs/options.md`: every table's options, then each connector's.
pub(crate) fn markdown() -> String {
    let mut out = String::from(
        "# Table options\n\n\
         <!-- Generated from the option declarations in src/ (options/scan.rs and each \
         connector's options.rs); do not edit by hand. `DFT_BLESS=1 cargo test --lib \
         options_doc` rewrites this file. -->\n\n\
         Options go in `CREATE EXTERNAL TABLE … OPTIONS ('key' 'value', …)`, or in the map given \
         to `TopicTable::open`. Unknown keys are errors that list the valid ones; secret values \
         are never printed.\n\n",
    );
    section(&mut out, "Every table", SCAN_OPTIONS);
    for connector in crate::connector::connectors() {
        section(
            &mut out,
            &format!("`STORED AS {}` tables", connector.name()),
            connector.options(),
        );
    }
    out
}

fn section(out: &mut String, title: &str, decls: &[&OptionDecl]) {
    out.push_str(&format!(
        "## {title}\n\n| option | values | default | meaning |\n|---|---|---|---|\n"
    ));
    for d in decls {
        let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            d.key,
            cell(d.values),
            cell(d.default),
            cell(d.doc)
        ));
    }
    out.push('\n');
}

/// The first components of every option key (`value`, `scan`, `kafka`, …): the CLI registers
/// one table-options namespace for each.
pub(crate) fn namespaces() -> Vec<&'static str> {
    let mut all: Vec<&'static str> = SCAN_OPTIONS.iter().map(|d| d.namespace()).collect();
    for connector in crate::connector::connectors() {
        all.extend(connector.options().iter().map(|d| d.namespace()));
    }
    all.sort_unstable();
    all.dedup();
    all
}

#[cfg(test)]
mod tests {
    #[test]
    fn options_doc_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/options.md");
        let generated = super::markdown();
        if std::env::var("DFT_BLESS").is_ok_and(|v| v == "1") {
            std::fs::write(path, &generated).unwrap();
            return;
        }
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == generated,
            "docs/options.md is not what the option declarations generate; run \
             `DFT_BLESS=1 cargo test --lib options_doc` and commit the file"
        );
    }

    #[test]
    fn namespaces_cover_every_key() {
        let spaces = super::namespaces();
        for ns in ["value", "key", "scan", "schema-registry"] {
            assert!(spaces.contains(&ns), "{spaces:?}");
        }
    }
}
