//! The BM25 lane: a tantivy index over chunk symbols, paths and code, with the code tokenizer.
//!
//! Each document also stores its whole chunk (JSON in tantivy's compressed doc store), so
//! both lanes' hits are read from here: a by-id read through the chunk-id term and the doc
//! store takes microseconds per chunk, where taking the same rows from the Lance table cost
//! 7–12 ms per query at 100k chunks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use tantivy::collector::{Count, DocSetCollector, TopDocs};
use tantivy::merge_policy::LogMergePolicy;
use tantivy::query::{
    Bm25StatisticsProvider, BooleanQuery, BoostQuery, Occur, Query, RegexQuery, TermQuery,
    TermSetQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::{
    DocAddress, DocSet, Index, IndexWriter, ReloadPolicy, Searcher, SegmentOrdinal, TERMINATED,
    TantivyDocument, Term, doc,
};

use super::ChunkFilter;
use super::filter::PerFilterCache;
use super::tokenizer::{CODE_TOKENIZER, CodeTokenizer, MIN_STEM_CHARS, english_stem};
use crate::chunk::Chunk;
use crate::error::{Error, Result};

mod statistics;

use statistics::{
    AdmittedDocs, AdmittedQuery, ScopedStatistics, ScopedTotals, Statistics, live_totals,
};

/// A segment with this share of deleted documents is merged even when its size alone
/// would not call for it.
const DELETED_RATIO_BEFORE_MERGE: f32 = 0.2;
/// Memory budget of the single tantivy writer thread.
const WRITER_MEMORY: usize = 64 * 1024 * 1024;
/// A query term matched in another form of the same word ("published" matching
/// `publish`) counts this share of an exact match.
pub const WORD_FORM_WEIGHT: f32 = 0.5;

/// A BM25 match.
#[derive(Debug, Clone, PartialEq)]
pub struct LexicalHit {
    /// The matching chunk.
    pub chunk: Chunk,
    /// BM25 score (sum over fields and terms, with field boosts).
    pub score: f32,
}

#[derive(Clone, Copy)]
struct Fields {
    chunk_id: Field,
    /// The whole chunk as JSON, stored only.
    chunk: Field,
    repo: Field,
    /// The path as one untokenized term, for path-glob access filters.
    path_raw: Field,
    symbol: Field,
    path: Field,
    content: Field,
}

impl Fields {
    /// The fields queries score: symbol, path, content.
    fn searched(&self) -> [Field; 3] {
        [self.symbol, self.path, self.content]
    }

    /// Searched fields with their boosts: a match in the symbol says more than one in the
    /// path or the body.
    fn weighted(&self) -> [(Field, f32); 3] {
        let [symbol, path, content] = self.searched();
        [(symbol, 3.0), (path, 1.5), (content, 1.0)]
    }
}

fn schema() -> Schema {
    let mut builder = Schema::builder();
    let code = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(CODE_TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    builder.add_text_field("chunk_id", STRING);
    builder.add_text_field("chunk", STORED);
    builder.add_text_field("repo", STRING);
    builder.add_text_field("path_raw", STRING);
    builder.add_text_field("symbol", code.clone());
    builder.add_text_field("path", code.clone());
    builder.add_text_field("content", code);
    builder.build()
}

fn fields_of(schema: &Schema) -> Result<Fields> {
    let get = |name: &str| schema.get_field(name).map_err(Error::store);
    Ok(Fields {
        chunk_id: get("chunk_id")?,
        chunk: get("chunk")?,
        repo: get("repo")?,
        path_raw: get("path_raw")?,
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
    /// Creates an empty index in `path`, or opens the copy of a generation's index there.
    pub(super) fn create(path: &Path, copied: bool) -> Result<LexicalWriter> {
        let index = if copied {
            Index::open_in_dir(path).map_err(Error::store)?
        } else {
            std::fs::create_dir_all(path)
                .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
            Index::create_in_dir(path, schema()).map_err(Error::store)?
        };
        index.tokenizers().register(CODE_TOKENIZER, CodeTokenizer);
        let fields = fields_of(&index.schema())?;
        let writer = index
            .writer_with_num_threads(1, WRITER_MEMORY)
            .map_err(Error::store)?;
        // Segments whose documents are mostly deleted (files changed since) get merged
        // away, so incremental runs do not grow the index.
        let mut policy = LogMergePolicy::default();
        policy.set_del_docs_ratio_before_merge(DELETED_RATIO_BEFORE_MERGE);
        writer.set_merge_policy(Box::new(policy));
        Ok(LexicalWriter { writer, fields })
    }

    /// Deletes the documents of these files (repository, path); documents added later in
    /// the same run are not affected.
    pub(super) fn remove_files(&mut self, files: &[(String, String)]) -> Result<()> {
        let f = self.fields;
        let mut by_repo: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (repo, path) in files {
            by_repo.entry(repo).or_default().push(path);
        }
        for (repo, paths) in by_repo {
            let query = BooleanQuery::new(vec![
                (
                    Occur::Must,
                    Box::new(TermQuery::new(
                        Term::from_field_text(f.repo, repo),
                        IndexRecordOption::Basic,
                    )) as Box<dyn Query>,
                ),
                (
                    Occur::Must,
                    Box::new(TermSetQuery::new(
                        paths.iter().map(|p| Term::from_field_text(f.path_raw, p)),
                    )),
                ),
            ]);
            self.writer
                .delete_query(Box::new(query))
                .map_err(Error::store)?;
        }
        Ok(())
    }

    pub(super) fn add(&mut self, chunk: &Chunk) -> Result<()> {
        let f = self.fields;
        let symbol = format!("{} {}", chunk.symbol, chunk.signature);
        let stored = serde_json::to_string(chunk)
            .map_err(|e| Error::Internal(format!("cannot serialize a chunk: {e}")))?;
        self.writer
            .add_document(doc!(
                f.chunk_id => chunk.chunk_id.as_str(),
                f.chunk => stored,
                f.repo => chunk.repo.as_str(),
                f.path_raw => chunk.path.as_str(),
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
    /// Document and token totals per access filter (they depend only on the index and the
    /// filter, so they are computed once per filter and reader).
    totals: PerFilterCache<String, ScopedTotals>,
    /// Totals over the live documents, for unfiltered queries on segments that still hold
    /// deleted ones.
    live: OnceLock<ScopedTotals>,
}

impl LexicalReader {
    pub(super) fn open(path: &Path) -> Result<LexicalReader> {
        let index = Index::open_in_dir(path).map_err(Error::store)?;
        index.tokenizers().register(CODE_TOKENIZER, CodeTokenizer);
        let fields = fields_of(&index.schema())?;
        // A published generation never changes: no reloads, so cached per-segment
        // membership maps always line up with the searcher's segments.
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(Error::store)?;
        Ok(LexicalReader {
            reader,
            fields,
            totals: PerFilterCache::default(),
            live: OnceLock::new(),
        })
    }

    /// (segments, documents deleted but still on disk).
    pub(super) fn upkeep(&self) -> (usize, usize) {
        let searcher = self.reader.searcher();
        let segments = searcher.segment_readers();
        let deleted = segments.iter().map(|s| s.num_deleted_docs() as usize).sum();
        (segments.len(), deleted)
    }

    /// Other forms of each of `words` that the index holds ("published": `publish`,
    /// `publishes`, `publishing`): content terms that begin with the word's English stem
    /// and have the same stem, except those in `exact`. All of them are kept — a cap could
    /// be filled by terms of chunks a principal may not read and so shift their scores —
    /// and a form counts only where an admitted chunk holds it. They are never shown.
    fn word_forms(
        &self,
        searcher: &Searcher,
        words: &[String],
        exact: &[String],
    ) -> Result<BTreeSet<String>> {
        let mut forms = BTreeSet::new();
        for word in words {
            let stem = english_stem(word);
            if stem.chars().count() < MIN_STEM_CHARS {
                continue;
            }
            for segment in searcher.segment_readers() {
                let inverted = segment
                    .inverted_index(self.fields.content)
                    .map_err(Error::store)?;
                let mut stream = inverted
                    .terms()
                    .range()
                    .ge(stem.as_bytes())
                    .into_stream()
                    .map_err(|e| Error::io("cannot read the lexical index", e))?;
                while stream.advance() {
                    let Ok(term) = std::str::from_utf8(stream.key()) else {
                        continue;
                    };
                    if !term.starts_with(stem.as_ref()) {
                        break;
                    }
                    if !exact.iter().any(|e| e == term) && english_stem(term) == stem {
                        forms.insert(term.to_string());
                    }
                }
            }
        }
        Ok(forms)
    }

    /// Every distinct repository-relative path in the index.
    pub(super) fn distinct_paths(&self) -> Result<BTreeSet<String>> {
        let searcher = self.reader.searcher();
        let mut paths = BTreeSet::new();
        for segment in searcher.segment_readers() {
            let inverted = segment
                .inverted_index(self.fields.path_raw)
                .map_err(Error::store)?;
            let mut terms = inverted
                .terms()
                .stream()
                .map_err(|e| Error::io("cannot read the lexical index", e))?;
            while terms.advance() {
                paths.insert(String::from_utf8_lossy(terms.key()).into_owned());
            }
        }
        Ok(paths)
    }

    /// Documents `filter` admits.
    pub(super) fn count(&self, filter: &ChunkFilter) -> Result<usize> {
        let searcher = self.reader.searcher();
        match self.filter_query(filter)? {
            None => Ok(searcher.num_docs() as usize),
            Some(admitted) => searcher.search(&admitted, &Count).map_err(Error::store),
        }
    }

    /// The filter as a query matching exactly the admitted documents; `None` when
    /// unrestricted. One term-set clause for the whole repositories and one per group of
    /// repositories sharing the same path globs, so its cost does not grow per repository.
    fn filter_query(&self, filter: &ChunkFilter) -> Result<Option<BooleanQuery>> {
        let Some(groups) = filter.groups() else {
            return Ok(None);
        };
        let f = self.fields;
        let repo_set = |repos: &[&str]| -> Box<dyn Query> {
            Box::new(TermSetQuery::new(
                repos.iter().map(|r| Term::from_field_text(f.repo, r)),
            ))
        };
        let mut allowed: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if !groups.whole.is_empty() {
            allowed.push((Occur::Should, repo_set(&groups.whole)));
        }
        for (regex, repos) in &groups.by_paths {
            // Paths listed when the filter was prepared are looked up as terms; otherwise
            // the regex runs over the term dictionary (every query).
            let paths: Box<dyn Query> = match filter.listed_paths(regex) {
                // No path of the index matches: the group admits nothing.
                Some([]) => continue,
                Some(listed) => Box::new(TermSetQuery::new(
                    listed.iter().map(|p| Term::from_field_text(f.path_raw, p)),
                )),
                None => {
                    Box::new(RegexQuery::from_pattern(regex, f.path_raw).map_err(Error::store)?)
                }
            };
            let clause =
                BooleanQuery::new(vec![(Occur::Must, repo_set(repos)), (Occur::Must, paths)]);
            allowed.push((Occur::Should, Box::new(clause)));
        }
        Ok(Some(BooleanQuery::new(allowed)))
    }

    /// BM25 over `terms`, each of `words` (plain words among them) also matching its other
    /// forms at [`WORD_FORM_WEIGHT`].
    pub(super) fn search(
        &self,
        terms: &[String],
        words: &[String],
        filter: &ChunkFilter,
        limit: usize,
    ) -> Result<Vec<LexicalHit>> {
        let f = self.fields;
        let searcher = self.reader.searcher();
        let forms = self.word_forms(&searcher, words, terms)?;
        let weighted_terms = terms
            .iter()
            .map(|t| (t, 1.0))
            .chain(forms.iter().map(|t| (t, WORD_FORM_WEIGHT)));
        let mut should: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for (term, weight) in weighted_terms {
            for (field, boost) in f.weighted() {
                let query = TermQuery::new(
                    Term::from_field_text(field, term),
                    IndexRecordOption::WithFreqs,
                );
                should.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(Box::new(query), boost * weight)),
                ));
            }
        }
        let collector = TopDocs::with_limit(limit).order_by_score();
        let terms_query: Box<dyn Query> = Box::new(BooleanQuery::new(should));
        let statistics = self.statistics(&searcher, filter)?;
        let search_counted_by = |totals: &ScopedTotals, query: &dyn Query| {
            let stats = ScopedStatistics {
                searcher: &searcher,
                totals,
                fields: f,
            };
            searcher.search_with_statistics_provider(query, &collector, &stats)
        };
        let top = match &statistics {
            Statistics::Native => searcher.search(&terms_query, &collector),
            // tantivy's own statistics still count the documents of files deleted or
            // changed since the index was built, until a merge drops them: an index
            // updated in place would rank differently from one built afresh.
            Statistics::Live(totals) => search_counted_by(totals, terms_query.as_ref()),
            // BM25 statistics (document count, field lengths, document frequencies) come
            // from the admitted documents only: chunks a principal may not read must not
            // shift the scores of the ones they may.
            Statistics::Scoped(totals) if totals.docs == 0 => return Ok(Vec::new()),
            Statistics::Scoped(totals) => {
                // The filter restricts, it does not score: a scoring clause would add its
                // own idf (larger for small repositories) to every hit. It is the admitted
                // documents the totals already hold, not the filter query run again (its
                // term sets cost 0.7–1.3 ms per query at 100k chunks).
                let admitted = AdmittedQuery {
                    admitted: Arc::clone(&totals.admitted),
                };
                let query = BooleanQuery::new(vec![
                    (Occur::Must, terms_query),
                    (Occur::Must, Box::new(admitted)),
                ]);
                search_counted_by(totals, &query)
            }
        }
        .map_err(Error::store)?;
        top.into_iter()
            .map(|(score, address)| {
                let chunk = stored_chunk(&searcher, f.chunk, address)?;
                Ok(LexicalHit { chunk, score })
            })
            .collect()
    }

    /// For each of `words`, how many chunks `filter` admits hold it in their code, and how
    /// many chunks it admits: counted over the admitted live documents only, like the
    /// BM25 statistics, so chunks a principal may not read change neither number.
    pub(super) fn mentions(
        &self,
        words: &[String],
        filter: &ChunkFilter,
    ) -> Result<(Vec<u64>, u64)> {
        let searcher = self.reader.searcher();
        let terms = words
            .iter()
            .map(|w| Term::from_field_text(self.fields.content, w));
        let statistics = self.statistics(&searcher, filter)?;
        let Some(totals) = statistics.totals() else {
            let counts = terms
                .map(|t| searcher.doc_freq(&t))
                .collect::<tantivy::Result<_>>()
                .map_err(Error::store)?;
            return Ok((counts, searcher.num_docs()));
        };
        let stats = ScopedStatistics {
            searcher: &searcher,
            totals,
            fields: self.fields,
        };
        let counts = terms
            .map(|t| stats.doc_freq(&t))
            .collect::<tantivy::Result<_>>()
            .map_err(Error::store)?;
        Ok((counts, totals.docs))
    }

    /// Where a query's statistics come from under `filter`: tantivy's own, the live
    /// documents' when some are deleted, or the admitted documents' when it restricts.
    fn statistics(&self, searcher: &Searcher, filter: &ChunkFilter) -> Result<Statistics<'_>> {
        Ok(match self.scoped_totals(searcher, filter)? {
            Some(totals) => Statistics::Scoped(totals),
            None if searcher.segment_readers().iter().any(|s| s.has_deletes()) => {
                Statistics::Live(self.live_totals(searcher)?)
            }
            None => Statistics::Native,
        })
    }

    /// The totals of every live document, computed once per reader.
    fn live_totals(&self, searcher: &Searcher) -> Result<&ScopedTotals> {
        if let Some(totals) = self.live.get() {
            return Ok(totals);
        }
        let computed = live_totals(searcher, self.fields)?;
        Ok(self.live.get_or_init(|| computed))
    }

    /// The stored chunks of these ids, in their order, one per id (from its first live
    /// document); ids the index does not hold are left out.
    pub(super) fn chunks_by_id(&self, ids: &[String]) -> Result<Vec<Chunk>> {
        let searcher = self.reader.searcher();
        let segments = searcher
            .segment_readers()
            .iter()
            .map(|segment| Ok((segment, segment.inverted_index(self.fields.chunk_id)?)))
            .collect::<tantivy::Result<Vec<_>>>()
            .map_err(Error::store)?;
        let mut out = Vec::with_capacity(ids.len());
        'ids: for id in ids {
            let term = Term::from_field_text(self.fields.chunk_id, id);
            for (ordinal, (segment, inverted)) in segments.iter().enumerate() {
                let Some(mut postings) = inverted
                    .read_postings(&term, IndexRecordOption::Basic)
                    .map_err(Error::store)?
                else {
                    continue;
                };
                let mut doc = postings.doc();
                while doc != TERMINATED {
                    if !segment.is_deleted(doc) {
                        let address = DocAddress::new(ordinal as SegmentOrdinal, doc);
                        out.push(stored_chunk(&searcher, self.fields.chunk, address)?);
                        continue 'ids;
                    }
                    doc = postings.advance();
                }
            }
        }
        Ok(out)
    }

    /// The stored chunks of one file (repository, path), in no particular order.
    pub(super) fn chunks_in_file(&self, repo: &str, path: &str) -> Result<Vec<Chunk>> {
        let searcher = self.reader.searcher();
        let term = |field, text| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, text),
                IndexRecordOption::Basic,
            ))
        };
        let file = BooleanQuery::new(vec![
            (Occur::Must, term(self.fields.repo, repo)),
            (Occur::Must, term(self.fields.path_raw, path)),
        ]);
        let addresses = searcher
            .search(&file, &DocSetCollector)
            .map_err(Error::store)?;
        addresses
            .into_iter()
            .map(|address| stored_chunk(&searcher, self.fields.chunk, address))
            .collect()
    }

    /// The admitted documents and BM25 totals of a restricting `filter` (`None` when
    /// unrestricted): cached, or computed by running its filter query once.
    fn scoped_totals(
        &self,
        searcher: &Searcher,
        filter: &ChunkFilter,
    ) -> Result<Option<ScopedTotals>> {
        if filter.is_unrestricted() {
            return Ok(None);
        }
        let key = filter.cache_key();
        if let Some(found) = self.totals.get(&key) {
            return Ok(Some(found));
        }
        let Some(admitted) = self.filter_query(filter)? else {
            return Ok(None);
        };
        let collector = AdmittedDocs {
            fields: self.fields.searched(),
        };
        let totals = searcher
            .search(&admitted, &collector)
            .map_err(Error::store)?;
        self.totals.insert(key, totals.clone());
        Ok(Some(totals))
    }
}

/// The chunk stored in the document at `address`.
fn stored_chunk(searcher: &Searcher, field: Field, address: DocAddress) -> Result<Chunk> {
    let doc: TantivyDocument = searcher.doc(address).map_err(Error::store)?;
    let json = doc
        .get_first(field)
        .and_then(|v| v.as_str())
        .ok_or_else(|| Error::storage("a lexical document has no stored chunk"))?;
    serde_json::from_str(json).map_err(|e| {
        Error::storage(format!(
            "a lexical document's stored chunk is unreadable: {e}"
        ))
    })
}
