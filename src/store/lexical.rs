//! The BM25 lane: a tantivy index over chunk symbols, paths and code, with the code tokenizer.

use std::path::Path;

use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::{Index, IndexWriter, TantivyDocument, Term, doc};

use super::ChunkFilter;
use super::tokenizer::{CODE_TOKENIZER, CodeTokenizer};
use crate::chunk::Chunk;
use crate::error::{Error, Result};

/// Memory budget of the single tantivy writer thread.
const WRITER_MEMORY: usize = 64 * 1024 * 1024;

/// A BM25 match.
#[derive(Debug, Clone, PartialEq)]
pub struct LexicalHit {
    /// The chunk's id.
    pub chunk_id: String,
    /// BM25 score (sum over fields and terms, with field boosts).
    pub score: f32,
}

#[derive(Clone, Copy)]
struct Fields {
    chunk_id: Field,
    repo: Field,
    symbol: Field,
    path: Field,
    content: Field,
}

impl Fields {
    /// Searched fields with their boosts: a match in the symbol says more than one in the
    /// path or the body.
    fn weighted(&self) -> [(Field, f32); 3] {
        [(self.symbol, 3.0), (self.path, 1.5), (self.content, 1.0)]
    }
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let code = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(CODE_TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        chunk_id: builder.add_text_field("chunk_id", STRING | STORED),
        repo: builder.add_text_field("repo", STRING),
        symbol: builder.add_text_field("symbol", code.clone()),
        path: builder.add_text_field("path", code.clone()),
        content: builder.add_text_field("content", code),
    };
    (builder.build(), fields)
}

fn fields_of(schema: &Schema) -> Result<Fields> {
    let get = |name: &str| schema.get_field(name).map_err(Error::store);
    Ok(Fields {
        chunk_id: get("chunk_id")?,
        repo: get("repo")?,
        symbol: get("symbol")?,
        path: get("path")?,
        content: get("content")?,
    })
}

/// Writes the tantivy index of one generation.
pub(super) struct LexicalWriter {
    writer: IndexWriter,
    fields: Fields,
}

impl LexicalWriter {
    pub(super) fn create(path: &Path) -> Result<LexicalWriter> {
        std::fs::create_dir_all(path)
            .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
        let (schema, fields) = schema();
        let index = Index::create_in_dir(path, schema).map_err(Error::store)?;
        index.tokenizers().register(CODE_TOKENIZER, CodeTokenizer);
        let writer = index
            .writer_with_num_threads(1, WRITER_MEMORY)
            .map_err(Error::store)?;
        Ok(LexicalWriter { writer, fields })
    }

    pub(super) fn add(&mut self, chunk: &Chunk) -> Result<()> {
        let f = self.fields;
        let symbol = format!("{} {}", chunk.symbol, chunk.signature);
        self.writer
            .add_document(doc!(
                f.chunk_id => chunk.chunk_id.as_str(),
                f.repo => chunk.repo.as_str(),
                f.symbol => symbol,
                f.path => chunk.path.as_str(),
                f.content => chunk.content.as_str(),
            ))
            .map_err(Error::store)?;
        Ok(())
    }

    pub(super) fn finish(mut self) -> Result<()> {
        self.writer.commit().map_err(Error::store)?;
        self.writer.wait_merging_threads().map_err(Error::store)
    }
}

/// Searches the tantivy index of one generation.
pub(super) struct LexicalReader {
    reader: tantivy::IndexReader,
    fields: Fields,
}

impl LexicalReader {
    pub(super) fn open(path: &Path) -> Result<LexicalReader> {
        let index = Index::open_in_dir(path).map_err(Error::store)?;
        index.tokenizers().register(CODE_TOKENIZER, CodeTokenizer);
        let fields = fields_of(&index.schema())?;
        let reader = index.reader().map_err(Error::store)?;
        Ok(LexicalReader { reader, fields })
    }

    pub(super) fn num_docs(&self) -> usize {
        self.reader.searcher().num_docs() as usize
    }

    pub(super) fn search(
        &self,
        terms: &[String],
        filter: &ChunkFilter,
        limit: usize,
    ) -> Result<Vec<LexicalHit>> {
        let f = self.fields;
        let mut should: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for term in terms {
            for (field, boost) in f.weighted() {
                let query = TermQuery::new(
                    Term::from_field_text(field, term),
                    IndexRecordOption::WithFreqs,
                );
                should.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(Box::new(query), boost)),
                ));
            }
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> =
            vec![(Occur::Must, Box::new(BooleanQuery::new(should)))];
        if let Some(repos) = &filter.repos {
            let allowed: Vec<(Occur, Box<dyn Query>)> = repos
                .iter()
                .map(|repo| {
                    let q = TermQuery::new(
                        Term::from_field_text(f.repo, repo),
                        IndexRecordOption::Basic,
                    );
                    (Occur::Should, Box::new(q) as Box<dyn Query>)
                })
                .collect();
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(allowed))));
        }
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let top = searcher
            .search(&query, &TopDocs::with_limit(limit).order_by_score())
            .map_err(Error::store)?;
        top.into_iter()
            .map(|(score, address)| {
                let doc: TantivyDocument = searcher.doc(address).map_err(Error::store)?;
                let chunk_id = doc
                    .get_first(f.chunk_id)
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| Error::Store("a lexical document has no chunk id".into()))?
                    .to_string();
                Ok(LexicalHit { chunk_id, score })
            })
            .collect()
    }
}
