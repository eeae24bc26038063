//! BM25 statistics that only the documents a query may count contribute to: the admitted
//! documents of an access filter, or the live ones of an index that still holds deleted
//! documents, with the collector that gathers them and the query that admits them.

use std::sync::Arc;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::fieldnorm::FieldNormReader;
use tantivy::index::SegmentId;
use tantivy::query::{
    AllScorer, BitSetDocSet, Bm25StatisticsProvider, ConstScorer, EmptyScorer, EnableScoring,
    Explanation, Query, Scorer, Weight,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{
    BitSet, DocId, DocSet, Score, Searcher, SegmentOrdinal, SegmentReader, TERMINATED, Term,
};

use super::Fields;
use crate::error::{Error, Result};

/// Where the BM25 statistics of one query come from.
pub(super) enum Statistics<'r> {
    /// tantivy's own: the filter admits everything and no document is deleted.
    Native,
    /// Every live document's, on an index that still holds deleted ones.
    Live(&'r ScopedTotals),
    /// The admitted documents' of a restricting filter.
    Scoped(ScopedTotals),
}

impl Statistics<'_> {
    /// The totals to count with; `None` for tantivy's own.
    pub(super) fn totals(&self) -> Option<&ScopedTotals> {
        match self {
            Statistics::Native => None,
            Statistics::Live(totals) => Some(totals),
            Statistics::Scoped(totals) => Some(totals),
        }
    }
}

/// The admitted documents of one filter: a membership map per segment, and the document
/// and token counts per searched field (symbol, path, content) BM25 needs.
#[derive(Clone)]
pub(super) struct ScopedTotals {
    pub(super) docs: u64,
    tokens: [u64; 3],
    /// The admitted documents of each segment, in segment-ordinal order.
    pub(super) admitted: Arc<Vec<SegmentAdmitted>>,
}

/// One segment's admitted documents.
#[derive(Clone)]
pub(super) struct SegmentAdmitted {
    segment: SegmentId,
    /// `None` when all of them are admitted.
    docs: Option<BitSet>,
}

/// The totals of every live document. A segment without deletes keeps tantivy's exact
/// counts; one with deletes sums the field lengths of its live documents, as a tantivy merge
/// would, so the result depends on the documents and not on the index's history.
pub(super) fn live_totals(searcher: &Searcher, fields: Fields) -> Result<ScopedTotals> {
    let mut tokens = [0u64; 3];
    let mut admitted = Vec::new();
    for segment in searcher.segment_readers() {
        let alive = segment.alive_bitset().map(|bits| {
            let mut live = BitSet::with_max_value(segment.max_doc());
            for doc in (0..segment.max_doc()).filter(|&doc| bits.is_alive(doc)) {
                live.insert(doc);
            }
            live
        });
        for (sum, field) in tokens.iter_mut().zip(fields.searched()) {
            *sum += segment_live_tokens(segment, field, alive.as_ref()).map_err(Error::store)?;
        }
        admitted.push(SegmentAdmitted {
            segment: segment.segment_id(),
            docs: alive,
        });
    }
    Ok(ScopedTotals {
        docs: searcher.num_docs(),
        tokens,
        admitted: Arc::new(admitted),
    })
}

/// Tokens of `field` in a segment's live documents (`alive`: `None` when none is deleted).
fn segment_live_tokens(
    segment: &SegmentReader,
    field: Field,
    alive: Option<&BitSet>,
) -> tantivy::Result<u64> {
    let Some(alive) = alive else {
        return Ok(segment.inverted_index(field)?.total_num_tokens());
    };
    let norms = segment.get_fieldnorms_reader(field)?;
    Ok((0..segment.max_doc())
        .filter(|&doc| alive.contains(doc))
        .map(|doc| u64::from(norms.fieldnorm(doc)))
        .sum())
}

/// BM25 statistics over the admitted documents only.
pub(super) struct ScopedStatistics<'a> {
    pub(super) searcher: &'a Searcher,
    pub(super) totals: &'a ScopedTotals,
    pub(super) fields: Fields,
}

impl Bm25StatisticsProvider for ScopedStatistics<'_> {
    fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
        let slot = self
            .fields
            .searched()
            .iter()
            .position(|&searched| searched == field);
        // Only the three searched fields are ever scored; the fallback keeps BM25 defined.
        Ok(slot.map_or(self.totals.docs, |i| self.totals.tokens[i]))
    }

    fn total_num_docs(&self) -> tantivy::Result<u64> {
        Ok(self.totals.docs)
    }

    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        let mut count = 0u64;
        for (ordinal, segment) in self.searcher.segment_readers().iter().enumerate() {
            let Some(admitted) = self.totals.admitted.get(ordinal) else {
                continue;
            };
            let inverted = segment.inverted_index(term.field())?;
            let Some(admitted) = &admitted.docs else {
                count += u64::from(inverted.doc_freq(term)?);
                continue;
            };
            let Some(mut postings) = inverted.read_postings(term, IndexRecordOption::Basic)? else {
                continue;
            };
            let mut doc = postings.doc();
            while doc != TERMINATED {
                count += u64::from(admitted.contains(doc));
                doc = postings.advance();
            }
        }
        Ok(count)
    }
}

/// Collects the admitted documents of each segment with their field lengths (tantivy's
/// field norms) in the three searched fields.
pub(super) struct AdmittedDocs {
    pub(super) fields: [Field; 3],
}

pub(super) struct SegmentAdmittedDocs {
    ordinal: SegmentOrdinal,
    segment: SegmentId,
    readers: Vec<FieldNormReader>,
    admitted: BitSet,
    docs: u64,
    tokens: [u64; 3],
}

/// One segment's harvest: ordinal, membership, documents, tokens per field.
type SegmentHarvest = (SegmentOrdinal, SegmentAdmitted, u64, [u64; 3]);

impl Collector for AdmittedDocs {
    type Fruit = ScopedTotals;
    type Child = SegmentAdmittedDocs;

    fn for_segment(
        &self,
        ordinal: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<SegmentAdmittedDocs> {
        let readers = self
            .fields
            .iter()
            .map(|&field| segment.get_fieldnorms_reader(field))
            .collect::<tantivy::Result<Vec<_>>>()?;
        Ok(SegmentAdmittedDocs {
            ordinal,
            segment: segment.segment_id(),
            readers,
            admitted: BitSet::with_max_value(segment.max_doc()),
            docs: 0,
            tokens: [0; 3],
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, mut fruits: Vec<SegmentHarvest>) -> tantivy::Result<ScopedTotals> {
        fruits.sort_by_key(|f| f.0);
        let mut docs = 0;
        let mut tokens = [0u64; 3];
        let mut admitted = Vec::with_capacity(fruits.len());
        for (_, members, d, t) in fruits {
            docs += d;
            for (sum, n) in tokens.iter_mut().zip(t) {
                *sum += n;
            }
            admitted.push(members);
        }
        Ok(ScopedTotals {
            docs,
            tokens,
            admitted: Arc::new(admitted),
        })
    }
}

impl SegmentCollector for SegmentAdmittedDocs {
    type Fruit = SegmentHarvest;

    fn collect(&mut self, doc: DocId, _score: Score) {
        self.docs += 1;
        self.admitted.insert(doc);
        for (sum, reader) in self.tokens.iter_mut().zip(&self.readers) {
            *sum += u64::from(reader.fieldnorm(doc));
        }
    }

    fn harvest(self) -> SegmentHarvest {
        let members = SegmentAdmitted {
            segment: self.segment,
            docs: Some(self.admitted),
        };
        (self.ordinal, members, self.docs, self.tokens)
    }
}

/// Matches the documents of a filter's [`ScopedTotals`], scoring none of them: the access
/// filter as a required clause, without evaluating its term sets again.
#[derive(Clone)]
pub(super) struct AdmittedQuery {
    pub(super) admitted: Arc<Vec<SegmentAdmitted>>,
}

impl std::fmt::Debug for AdmittedQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdmittedQuery({} segments)", self.admitted.len())
    }
}

impl Query for AdmittedQuery {
    fn weight(&self, _scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(self.clone()))
    }
}

impl Weight for AdmittedQuery {
    fn scorer(&self, reader: &SegmentReader, _boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let segment = reader.segment_id();
        Ok(match self.admitted.iter().find(|a| a.segment == segment) {
            Some(SegmentAdmitted {
                docs: Some(docs), ..
            }) => Box::new(ConstScorer::new(BitSetDocSet::from(docs.clone()), 0.0)),
            // Only the unrestricted totals have such segments, and an unrestricted query
            // has no filter clause; the arm keeps the meaning of `None` all the same.
            Some(SegmentAdmitted { docs: None, .. }) => {
                Box::new(ConstScorer::new(AllScorer::new(reader.max_doc()), 0.0))
            }
            // A segment the filter was not evaluated on admits nothing.
            None => Box::new(EmptyScorer),
        })
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let mut scorer = self.scorer(reader, 0.0)?;
        if scorer.seek(doc) == doc {
            Ok(Explanation::new("admitted by the access filter", 0.0))
        } else {
            Err(tantivy::TantivyError::InvalidArgument(format!(
                "document {doc} is not admitted"
            )))
        }
    }
}
