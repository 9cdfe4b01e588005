//! The candidate paths of one Loc-RIB prefix. Almost every prefix has one
//! path, so that one is stored inline in the table slot: a boxed slice
//! would cost a 32-byte heap chunk per prefix plus the pointer chase.

use super::decision::Path;
use std::ops::{Deref, DerefMut};

#[derive(Default)]
pub enum Paths {
    #[default]
    Empty,
    One(Path),
    Many(Box<[Path]>),
}

// The slot stays the size of one Path: the enum tag lives in the niche of
// Path's `stale` bool.
const _: () = assert!(std::mem::size_of::<Paths>() == std::mem::size_of::<Path>());

impl Paths {
    pub fn push(&mut self, path: Path) {
        *self = match std::mem::take(self) {
            Paths::Empty => Paths::One(path),
            Paths::One(a) => Paths::Many(Box::new([a, path])),
            Paths::Many(b) => {
                let mut v = b.into_vec();
                v.reserve_exact(1);
                v.push(path);
                Paths::Many(v.into_boxed_slice())
            }
        };
    }

    /// Removes path `i`; the last one takes its place.
    pub fn swap_remove(&mut self, i: usize) {
        *self = match std::mem::take(self) {
            Paths::Empty => Paths::Empty,
            Paths::One(a) => {
                if i == 0 {
                    Paths::Empty
                } else {
                    Paths::One(a)
                }
            }
            Paths::Many(b) => {
                let mut v = b.into_vec();
                if i < v.len() {
                    v.swap_remove(i);
                }
                match v.len() {
                    0 => Paths::Empty,
                    1 => Paths::One(v.pop().expect("one path")),
                    _ => Paths::Many(v.into_boxed_slice()),
                }
            }
        };
    }
}

impl Deref for Paths {
    type Target = [Path];
    fn deref(&self) -> &[Path] {
        match self {
            Paths::Empty => &[],
            Paths::One(p) => std::slice::from_ref(p),
            Paths::Many(b) => b,
        }
    }
}

impl DerefMut for Paths {
    fn deref_mut(&mut self) -> &mut [Path] {
        match self {
            Paths::Empty => &mut [],
            Paths::One(p) => std::slice::from_mut(p),
            Paths::Many(b) => b,
        }
    }
}
