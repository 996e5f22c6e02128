//! The metadata database: SQLite in WAL mode under the data root. Every multi-step change is
//! one transaction, so a crash leaves the database as it was before or after, never between.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::error::Result;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS images(
    id TEXT PRIMARY KEY,
    manifest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    created TEXT,
    added TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tags(
    ref TEXT PRIMARY KEY,
    image TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS digests(
    repo TEXT NOT NULL,
    digest TEXT NOT NULL,
    image TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    PRIMARY KEY(repo, digest)
);
CREATE TABLE IF NOT EXISTS image_layers(
    image TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    chain TEXT NOT NULL,
    PRIMARY KEY(image, idx)
);
CREATE TABLE IF NOT EXISTS image_blobs(
    image TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    digest TEXT NOT NULL,
    PRIMARY KEY(image, digest)
);
CREATE TABLE IF NOT EXISTS snapshots(
    chain TEXT PRIMARY KEY,
    parent TEXT,
    diff TEXT NOT NULL,
    size INTEGER NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS build_cache(
    key TEXT PRIMARY KEY,
    result TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS build_cache_refs(
    key TEXT NOT NULL REFERENCES build_cache(key) ON DELETE CASCADE,
    ref TEXT NOT NULL,
    PRIMARY KEY(key, ref)
);
CREATE TABLE IF NOT EXISTS image_users(
    image TEXT NOT NULL,
    user TEXT NOT NULL,
    PRIMARY KEY(image, user)
);
"#;

/// A connection to `berth.db`.
#[derive(Debug)]
pub struct Db {
    conn: Connection,
}

/// An image row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRow {
    /// Config digest.
    pub id: String,
    /// Manifest digest.
    pub manifest: String,
    /// Manifest media type.
    pub media_type: String,
    /// Unpacked size in bytes.
    pub size: i64,
    /// The config's creation time.
    pub created: Option<String>,
    /// When it was added here.
    pub added: String,
}

impl Db {
    /// Opens (creating) the database file.
    pub fn open(path: &Path) -> Result<Db> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Db { conn })
    }

    /// Runs `f` in one immediate transaction (taking the write lock up front, so concurrent
    /// berth processes queue instead of failing on upgrade).
    pub fn write<T>(&mut self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let v = f(&tx)?;
        tx.commit()?;
        Ok(v)
    }

    /// The raw connection, for reads.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// All images.
    pub fn images(&self) -> Result<Vec<ImageRow>> {
        let mut st = self
            .conn
            .prepare("SELECT id, manifest, media_type, size, created, added FROM images ORDER BY added DESC")?;
        let rows = st.query_map([], row_to_image)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// One image by full id.
    pub fn image(&self, id: &str) -> Result<Option<ImageRow>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, manifest, media_type, size, created, added FROM images WHERE id = ?1",
                [id],
                row_to_image,
            )
            .optional()?)
    }

    /// Image ids starting with a hex prefix.
    pub fn ids_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare("SELECT id FROM images WHERE substr(id, 8, ?2) = ?1")?;
        let rows = st.query_map(params![prefix, prefix.len() as i64], |r| r.get(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// The image a tag points at.
    pub fn tag(&self, reference: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT image FROM tags WHERE ref = ?1", [reference], |r| r.get(0))
            .optional()?)
    }

    /// The image a repo digest points at.
    pub fn by_digest(&self, repo: &str, digest: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT image FROM digests WHERE repo = ?1 AND digest = ?2",
                [repo, digest],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Tags of an image.
    pub fn tags_of(&self, id: &str) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare("SELECT ref FROM tags WHERE image = ?1 ORDER BY ref")?;
        let rows = st.query_map([id], |r| r.get(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// `repo@digest` entries of an image.
    pub fn digests_of(&self, id: &str) -> Result<Vec<(String, String)>> {
        let mut st = self
            .conn
            .prepare("SELECT repo, digest FROM digests WHERE image = ?1 ORDER BY repo")?;
        let rows = st.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Chain ids of an image's layers, base first.
    pub fn chains_of(&self, id: &str) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare("SELECT chain FROM image_layers WHERE image = ?1 ORDER BY idx")?;
        let rows = st.query_map([id], |r| r.get(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Whether a snapshot is recorded.
    pub fn has_snapshot(&self, chain: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_row("SELECT 1 FROM snapshots WHERE chain = ?1", [chain], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Snapshots (chain, size) no image uses.
    pub fn unused_snapshots(&self) -> Result<Vec<String>> {
        let mut st = self.conn.prepare(
            "SELECT chain FROM snapshots WHERE chain NOT IN (SELECT chain FROM image_layers)
             AND chain NOT IN (SELECT ref FROM build_cache_refs)",
        )?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Blob digests some image (or a build cache entry) references.
    pub fn used_blobs(&self) -> Result<std::collections::HashSet<String>> {
        let mut st = self
            .conn
            .prepare("SELECT digest FROM image_blobs UNION SELECT ref FROM build_cache_refs")?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// A build cache entry's result.
    pub fn cache_get(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT result FROM build_cache WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Number of build cache entries.
    pub fn cache_count(&self) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM build_cache", [], |r| r.get(0))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Who uses an image (containers register themselves).
    pub fn users_of(&self, id: &str) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare("SELECT user FROM image_users WHERE image = ?1 ORDER BY user")?;
        let rows = st.query_map([id], |r| r.get(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Total size of all snapshots.
    pub fn snapshot_sizes(&self) -> Result<Vec<(String, i64)>> {
        let mut st = self.conn.prepare("SELECT chain, size FROM snapshots")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }
}

fn row_to_image(r: &rusqlite::Row<'_>) -> rusqlite::Result<ImageRow> {
    Ok(ImageRow {
        id: r.get(0)?,
        manifest: r.get(1)?,
        media_type: r.get(2)?,
        size: r.get(3)?,
        created: r.get(4)?,
        added: r.get(5)?,
    })
}
