//! `tabbyctl manifests [--out DIR] [--image REPO:TAG] [--installation FILE]`:
//! renders every generated manifest into DIR, leaving the files it doesn't
//! generate (the README) alone.

use anyhow::{Context, Result};
use std::path::Path;
use tabby_agent::manifests::{installation, render_all, tabby::Options};

pub fn write_all(dir: &Path, image: Option<String>, installation: Option<&Path>) -> Result<()> {
    let mut opts = Options::default();
    if let Some(i) = image {
        opts.image = i;
    }
    if let Some(f) = installation {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        opts =
            installation::options_from(&text, opts).with_context(|| format!("{}", f.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, text) in render_all(&opts) {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
