//! Transactions whose BEGIN, COMMIT and ROLLBACK are cached statements.
//!
//! rusqlite's `Transaction` runs them through `execute_batch`, so SQLite
//! parses and compiles `BEGIN IMMEDIATE` and `COMMIT` again for every
//! transaction: about 1% of the server's CPU in the load mix, where most
//! transactions write or read a handful of rows. A [`Tx`] runs the same
//! statements from the connection's statement cache. It dereferences to the
//! connection, so the store's helpers take `&Connection` and run inside
//! whatever transaction their caller began.
use std::ops::Deref;

use rusqlite::Connection;

use crate::Result;

/// An open transaction on a connection, rolled back when dropped unless
/// [`Tx::commit`] succeeded (also when the code using it panicked).
pub(crate) struct Tx<'c> {
    conn: &'c Connection,
    open: bool,
}

/// How a [`Tx`] takes SQLite's locks.
#[derive(Clone, Copy)]
pub(crate) enum Begin {
    /// `BEGIN`: a read snapshot from the first read on.
    Deferred,
    /// `BEGIN IMMEDIATE`: the write lock up front.
    Immediate,
}

impl<'c> Tx<'c> {
    pub(crate) fn begin(conn: &'c Connection, how: Begin) -> rusqlite::Result<Tx<'c>> {
        let sql = match how {
            Begin::Deferred => "BEGIN DEFERRED",
            Begin::Immediate => "BEGIN IMMEDIATE",
        };
        conn.prepare_cached(sql)?.execute([])?;
        Ok(Tx { conn, open: true })
    }

    /// Commits. On failure the transaction is rolled back (by SQLite, or by
    /// the drop that follows).
    pub(crate) fn commit(mut self) -> rusqlite::Result<()> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        self.open = false;
        Ok(())
    }

    /// Ends the transaction without keeping anything (a read's snapshot is
    /// released).
    pub(crate) fn rollback(mut self) -> rusqlite::Result<()> {
        self.open = false;
        end(self.conn)
    }
}

/// Rolls back the connection's open transaction, if any (a failed COMMIT
/// may already have ended it).
fn end(conn: &Connection) -> rusqlite::Result<()> {
    if conn.is_autocommit() {
        return Ok(());
    }
    conn.prepare_cached("ROLLBACK")?.execute([])?;
    Ok(())
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            // Nothing to report to: a connection left inside a transaction
            // fails its next BEGIN, which is reported there.
            let _ = end(self.conn);
        }
    }
}

impl Deref for Tx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

/// Runs `f` inside a savepoint of the current transaction: kept on `Ok`,
/// undone on `Err` (the transaction goes on either way).
pub(crate) fn savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    conn.prepare_cached("SAVEPOINT sp")?.execute([])?;
    let out = f(conn);
    if out.is_err() {
        conn.prepare_cached("ROLLBACK TO sp")?.execute([])?;
    }
    conn.prepare_cached("RELEASE sp")?.execute([])?;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        c
    }

    fn count(c: &Connection) -> i64 {
        c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn commit_keeps_and_drop_rolls_back() {
        let c = conn();
        let tx = Tx::begin(&c, Begin::Immediate).unwrap();
        tx.execute("INSERT INTO t VALUES (1)", []).unwrap();
        tx.commit().unwrap();
        assert_eq!(count(&c), 1);
        assert!(c.is_autocommit());

        let tx = Tx::begin(&c, Begin::Immediate).unwrap();
        tx.execute("INSERT INTO t VALUES (2)", []).unwrap();
        drop(tx);
        assert_eq!(count(&c), 1, "a dropped transaction is rolled back");
        assert!(c.is_autocommit());

        let tx = Tx::begin(&c, Begin::Deferred).unwrap();
        tx.execute("INSERT INTO t VALUES (3)", []).unwrap();
        tx.rollback().unwrap();
        assert_eq!(count(&c), 1);
        assert!(c.is_autocommit(), "rollback ends the transaction");
    }

    #[test]
    fn a_panic_inside_rolls_back() {
        let c = conn();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let tx = Tx::begin(&c, Begin::Immediate).unwrap();
            tx.execute("INSERT INTO t VALUES (1)", []).unwrap();
            panic!("inside the transaction");
        }));
        assert!(r.is_err());
        assert!(c.is_autocommit());
        assert_eq!(count(&c), 0);
        // And the connection takes a new transaction.
        Tx::begin(&c, Begin::Immediate).unwrap().commit().unwrap();
    }

    #[test]
    fn a_failed_savepoint_is_undone_and_the_transaction_goes_on() {
        let c = conn();
        let tx = Tx::begin(&c, Begin::Immediate).unwrap();
        savepoint(&tx, |c| {
            c.execute("INSERT INTO t VALUES (1)", [])?;
            Ok(())
        })
        .unwrap();
        let failed: Result<()> = savepoint(&tx, |c| {
            c.execute("INSERT INTO t VALUES (2)", [])?;
            Err(crate::StoreError::Other("no".into()))
        });
        assert!(failed.is_err());
        tx.commit().unwrap();
        let xs: Vec<i64> = c
            .prepare("SELECT x FROM t")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(xs, vec![1]);
    }
}
