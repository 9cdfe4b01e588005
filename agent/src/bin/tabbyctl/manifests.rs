//! `tabbyctl manifests [--out DIR]`: renders every generated manifest into
//! DIR, leaving the files it doesn't generate (the conflist, the README)
//! alone.

use anyhow::{Context, Result};
use std::path::Path;

pub fn write_all(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for f in tabby_agent::manifests::files() {
        let path = dir.join(f.name);
        std::fs::write(&path, (f.render)())
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
