//! Training batches: examples tokenized once (truncated to the stage's
//! sequence length), then for every epoch a seeded shuffle, length bucketing
//! (examples of similar length share a batch, so little compute goes to
//! padding) and a shuffled batch order. The micro-batch for any global index
//! is a pure function of the seed, which is what lets a resumed run see
//! exactly the batches the interrupted run would have seen.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::base::Task;
use crate::text::data::Example;

/// Batches drawn together for bucketing: sorted by length within a pool of
/// this many batches.
const BUCKET_POOL: usize = 50;

/// The examples a task trains on: an embedding model encodes each text of
/// a pair on its own; classifiers read pairs as one sequence, and an
/// encoder-decoder as a source and its target.
pub fn task_examples(examples: &[Example], task: Task) -> Vec<Example> {
    match task {
        Task::Classification { .. } | Task::Seq2Seq => examples.to_vec(),
        _ => examples
            .iter()
            .flat_map(|e| {
                std::iter::once(e.text.clone())
                    .chain(e.pair.clone())
                    .map(Example::text)
            })
            .collect(),
    }
}

/// The order of the batches of one epoch over `lengths`.
pub fn epoch_batches(
    lengths: &[usize],
    batch_size: usize,
    seed: u64,
    epoch: usize,
) -> Vec<Vec<usize>> {
    let batch_size = batch_size.max(1);
    let mut rng = StdRng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.shuffle(&mut rng);
    let mut batches = Vec::new();
    for pool in order.chunks(batch_size * BUCKET_POOL) {
        let mut pool = pool.to_vec();
        pool.sort_by_key(|&i| (lengths[i], i));
        batches.extend(pool.chunks(batch_size).map(<[usize]>::to_vec));
    }
    batches.shuffle(&mut rng);
    batches
}

/// Micro-batches of a stage: an endless sequence of epochs.
pub struct BatchStream {
    lengths: Vec<usize>,
    batch_size: usize,
    seed: u64,
    per_epoch: usize,
    cached: Option<(usize, Vec<Vec<usize>>)>,
}

impl BatchStream {
    pub fn new(lengths: Vec<usize>, batch_size: usize, seed: u64) -> Self {
        let per_epoch = lengths.len().div_ceil(batch_size.max(1)).max(1);
        BatchStream {
            lengths,
            batch_size,
            seed,
            per_epoch,
            cached: None,
        }
    }

    /// Micro-batches per epoch.
    pub fn per_epoch(&self) -> usize {
        self.per_epoch
    }

    /// The example indices of global micro-batch `k`.
    pub fn get(&mut self, k: usize) -> Vec<usize> {
        let epoch = k / self.per_epoch;
        match &self.cached {
            Some((e, batches)) if *e == epoch => {
                batches.get(k % self.per_epoch).cloned().unwrap_or_default()
            }
            _ => {
                let batches = epoch_batches(&self.lengths, self.batch_size, self.seed, epoch);
                let batch = batches.get(k % self.per_epoch).cloned().unwrap_or_default();
                self.cached = Some((epoch, batches));
                batch
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_cover_every_example_once_and_are_reproducible() {
        let lengths: Vec<usize> = (0..103).map(|i| (i * 37) % 61 + 1).collect();
        let a = epoch_batches(&lengths, 8, 7, 0);
        let mut seen: Vec<usize> = a.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..103).collect::<Vec<_>>());
        assert_eq!(a, epoch_batches(&lengths, 8, 7, 0));
        assert_ne!(a, epoch_batches(&lengths, 8, 7, 1));
        // Bucketing: within a batch, lengths are close.
        let spread: usize = a
            .iter()
            .map(|b| {
                let l: Vec<usize> = b.iter().map(|&i| lengths[i]).collect();
                l.iter().max().unwrap() - l.iter().min().unwrap()
            })
            .sum();
        assert!(spread < 103 * 3, "{spread}");
        let mut stream = BatchStream::new(lengths, 8, 7);
        assert_eq!(
            stream.get(stream.per_epoch() + 1),
            epoch_batches(&stream.lengths.clone(), 8, 7, 1)[1]
        );
    }
}
