//! Interleaving: a phase's requests split into rounds, and in each round
//! every target (direct, then each proxy) takes its turn, the order rotating
//! from round to round.
//!
//! On a shared VM the machine's speed drifts over tens of seconds (nginx's
//! own added p50 at concurrency 1 moved from 25 to 562 µs between runs of
//! one day), so targets measured one after the other compare different
//! machines. Measured in alternating slices, a slow minute lands on every
//! target alike and the differences between them hold still.

/// How many of `total` requests round `round` of `rounds` sends to each
/// target: the rounds' shares differ by at most one and add up to `total`.
pub fn share(total: usize, rounds: usize, round: usize) -> usize {
    let rounds = rounds.max(1);
    if round >= rounds {
        return 0;
    }
    total * (round + 1) / rounds - total * round / rounds
}

/// The order in which `targets` targets take their turn in round `round`:
/// `0..targets` rotated left by `round`, so each target goes first (right
/// after the previous round's last) equally often.
pub fn order(targets: usize, round: usize) -> impl Iterator<Item = usize> {
    (0..targets).map(move |i| (i + round) % targets.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_differ_by_at_most_one() {
        for (total, rounds) in [(2000, 10), (7, 3), (3, 10), (0, 4), (5, 1), (5, 0)] {
            let shares: Vec<usize> = (0..rounds.max(1))
                .map(|r| share(total, rounds, r))
                .collect();
            assert_eq!(shares.iter().sum::<usize>(), total, "{total}/{rounds}");
            let (lo, hi) = (shares.iter().min(), shares.iter().max());
            assert!(hi.unwrap() - lo.unwrap() <= 1, "{shares:?}");
        }
        assert_eq!(share(10, 2, 2), 0, "no round past the last");
    }

    #[test]
    fn order_rotates() {
        let rounds: Vec<Vec<usize>> = (0..4).map(|r| order(3, r).collect()).collect();
        assert_eq!(
            rounds,
            [vec![0, 1, 2], vec![1, 2, 0], vec![2, 0, 1], vec![0, 1, 2]]
        );
        assert_eq!(order(1, 5).collect::<Vec<_>>(), [0]);
        assert_eq!(order(0, 1).count(), 0);
    }
}
