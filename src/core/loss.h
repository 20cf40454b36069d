/*
 * loss: the seeded draws behind the packet_loss and corrupt toxics, kept
 * apart from the pipe so that their statistics can be tested on their own.
 *
 *   pipe (tox_packet_loss) ─▶ loss_next():    is this chunk lost?
 *   pipe (tox_corrupt)     ─▶ loss_bit_gap(): how many bits pass before
 *                                             the next flipped one?
 *
 * packet_loss is a two-state Gilbert–Elliott chain in its simple form: the
 * state is whether the previous chunk was lost, the good state loses with
 * p, the bad state with q. Both come from the two attributes a user can
 * answer: the overall share of chunks lost (loss_rate, L) and how much a
 * decision follows the previous one (correlation, c, the lag-1 correlation
 * of the loss indicator):
 *
 *   p = L (1 - c)          q = L + c (1 - L)
 *
 * whose stationary loss rate is exactly L for every c, and whose runs of
 * losses are 1 / (1 - q) chunks long on average. c = 0 is a coin per chunk;
 * c = 1 decides the first chunk and repeats that decision forever.
 */
#ifndef VAURIEN_LOSS_H
#define VAURIEN_LOSS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/rng.h"

/* Whether the next chunk is lost, given loss_rate and correlation (each
 * 0..1, clamped) and *lost, the previous decision, which it updates. The
 * first chunk of a stream (no previous decision: first true) is lost with
 * probability loss_rate. One draw of r per call. */
bool loss_next(struct rng *r, double loss_rate, double correlation,
               bool *lost, bool first);

/* The number of bits that pass untouched before the next flipped one, when
 * each bit is flipped independently with probability rate (0..1): a
 * geometric draw, so corrupting costs a draw per flipped bit, not per
 * byte. rate 0 gives UINT64_MAX (never); rate 1 gives 0. One draw of r. */
uint64_t loss_bit_gap(struct rng *r, double rate);

#endif
