//! Queries an index through the library as one principal, the way every codeq surface does.
//!
//! ```text
//! cargo run --example as_principal -- INDEX_DIR PRINCIPAL QUERY...
//! ```
//!
//! [`Session::open`] finds the index, loads the model it was built with and the root's
//! access-control list, and scopes every query to what `PRINCIPAL` may read (in
//! single-user mode, without an ACL, the principal has no effect). The search is recorded
//! as a trace, as a `codeq search` would be; `codeq trace --as PRINCIPAL` explains it.

use std::path::PathBuf;
use std::process::ExitCode;

use codeq::search::QueryScope;
use codeq::session::{Session, SessionOptions};
use codeq::trace::Surface;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(index_dir), Some(principal)) = (args.next(), args.next()) else {
        eprintln!("usage: as_principal INDEX_DIR PRINCIPAL QUERY...");
        return ExitCode::from(2);
    };
    let query = args.collect::<Vec<_>>().join(" ");
    match run(PathBuf::from(index_dir), principal, &query) {
        Ok(found) if found > 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(err) => {
            eprintln!("as_principal: {err}");
            ExitCode::from(2)
        }
    }
}

/// Prints the top results of `query` as `principal`; returns how many there were.
fn run(index_dir: PathBuf, principal: String, query: &str) -> codeq::Result<usize> {
    let session = Session::open(&SessionOptions {
        index_dir: Some(index_dir),
        principal: Some(principal),
        ..SessionOptions::default()
    })?;
    println!("access: {:?}", session.access_mode());
    let scope = QueryScope {
        k: 5,
        ..QueryScope::default()
    };
    let searched = session.search(Surface::Search, query, &scope)?;
    for (rank, hit) in searched.value.hits.iter().enumerate() {
        let chunk = &hit.chunk;
        println!(
            "{}. {}:{}:{}-{}  {}",
            rank + 1,
            chunk.repo,
            chunk.path,
            chunk.start_line,
            chunk.end_line,
            chunk.symbol
        );
    }
    if let Ok(id) = &searched.trace {
        println!("trace {id}");
    }
    Ok(searched.value.hits.len())
}
