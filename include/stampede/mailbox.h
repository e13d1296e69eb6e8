/*
 * mailbox.h - how workers talk to each other.
 *
 * One stp_ring per (sender, receiver) pair of workers. A worker posts
 * fixed-size commands to another worker; the receiver drains its inbound rings
 * in batches on its own loop and calls the handler for each command in FIFO
 * order per sender. A uv_async_t wakes the receiver only when it may be asleep
 * (an atomic "wake pending" flag makes bursts cost one wake-up).
 *
 * Posting never drops: when a ring is full the command goes to the sender's
 * private overflow list for that receiver (kept in order, after the ring), and
 * stp_mailbox_backlogged() says so, so the sender can stop reading the
 * connection that produced the work. The overflow is moved into the ring as it
 * drains (the receiver signals the sender when it pops from a ring the sender
 * waits on; the sender also retries on each loop iteration and on a 1 ms
 * timer), and on_unblocked() is called on the sender's thread when its
 * overflow is empty again.
 *
 * A worker posting to itself calls the handler directly (same thread).
 *
 * Threads: stp_mailboxes_init/free on the main thread (before the workers
 * start / after they stopped); attach/detach on the worker's own thread;
 * post/backlogged from the sending worker's thread only.
 */
#ifndef STAMPEDE_MAILBOX_H
#define STAMPEDE_MAILBOX_H

#include "stampede/ring.h"

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

/* Called on the receiver's thread for each command, in order per sender. cmd
 * points into the mailbox's buffer and is valid only during the call. */
typedef void (*stp_mailbox_handler)(void *ctx, unsigned from, const void *cmd);
/* Called on the sender's thread when all its overflow lists became empty. */
typedef void (*stp_mailbox_unblocked)(void *ctx);

struct stp_mailboxes; /* opaque */

/* n workers, rings of ring_capacity (power of two) elements of elem_size. */
int stp_mailboxes_init(struct stp_mailboxes **out, unsigned n, size_t ring_capacity,
                       size_t elem_size);
/* Commands still queued (in rings or overflow lists) are discarded unread: they
 * are opaque bytes here, so the broker must drain (or drop the references its
 * commands carry) before calling this. All workers must be detached. */
void stp_mailboxes_free(struct stp_mailboxes *mb);
/* After every worker detached and its loop ended (main thread): hand each
 * command still in a ring or an overflow list to fn, in posting order per
 * pair, so the caller can release what the commands carry. */
void stp_mailboxes_drain(struct stp_mailboxes *mb, stp_mailbox_handler fn, void *ctx);

/* On worker `self`'s thread: start receiving on `loop`. The handles the
 * mailbox creates are closed by detach; run the loop until they are closed.
 * Commands posted to `self` before attach are delivered after it. detach may
 * be called from inside the handler; commands already popped in that batch are
 * then dropped and later ones stay queued (the broker drains before detach).
 * After detach, posts to `self` are queued but nobody is woken. */
int stp_mailbox_attach(struct stp_mailboxes *mb, unsigned self, uv_loop_t *loop,
                       stp_mailbox_handler handler, stp_mailbox_unblocked on_unblocked, void *ctx);
void stp_mailbox_detach(struct stp_mailboxes *mb, unsigned self);

/* On worker `from`'s thread. Returns 0, or 1 when the command went to the
 * overflow list (accepted all the same), or STP_ENOMEM. */
int stp_mailbox_post(struct stp_mailboxes *mb, unsigned from, unsigned to, const void *cmd);
/* For a sender that never attaches (a thread with no loop, e.g. a library's
 * delivery thread; one thread per `from`): push cmd into the ring and wake
 * `to`, or return STP_EAGAIN when the ring is full (nothing queued: the
 * caller waits and tries again). 0 or STP_EAGAIN. */
int stp_mailbox_try_post(struct stp_mailboxes *mb, unsigned from, unsigned to, const void *cmd);
/* On worker `from`'s thread: true while any overflow list of `from` is non-empty. */
bool stp_mailbox_backlogged(struct stp_mailboxes *mb, unsigned from);
/* Commands waiting in rings addressed to `to` (approximate; for metrics). */
size_t stp_mailbox_depth(struct stp_mailboxes *mb, unsigned to);
/* On worker `from`'s thread: commands of `from` waiting in its overflow lists. */
size_t stp_mailbox_overflowed(struct stp_mailboxes *mb, unsigned from);

#endif
