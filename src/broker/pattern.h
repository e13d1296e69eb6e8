/*
 * pattern.h - a trie of RabbitMQ-style topic patterns, and matching a topic
 * name against all of them at once.
 *
 * A pattern and a topic are dot-separated words ("a.b.c"; empty words
 * count: "a..b" is three words). In a pattern the word `*` matches exactly
 * one word and `#` zero or more; any other word, `#b` or `a*` too, matches
 * itself only. Each distinct pattern is one terminal node of the trie and
 * holds one opaque payload (the caller's; the trie never looks at it). A
 * run of `#` words is one `#` ("a.#.#" and "a.#" are the same pattern:
 * they match the same topics), so they share a terminal.
 *
 * Matching runs the trie as an NFA over (node, word position): each pair is
 * visited at most once per match (a per-match epoch on the node and a bitmap
 * of its visited positions), so a pattern with several `#` costs at most
 * nodes x positions, never exponential time; literal words are hash lookups,
 * so patterns under other literal prefixes are never touched. Every
 * terminal that matches is reported exactly once.
 *
 * Not thread-safe: a trie belongs to one worker. Nothing is allocated per
 * match once the scratch arrays have grown to the largest topic seen.
 */
#ifndef STP_BROKER_PATTERN_H
#define STP_BROKER_PATTERN_H

#include "stampede/map.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest pattern, in words, the broker accepts (SUBSCRIBE refuses a
 * longer one with an ERROR). The trie itself has no bound. */
#define STP_PATTERN_MAX_WORDS 128

struct stp_pnode;

struct stp_ptrie {
    struct stp_pnode *root; /* NULL while empty */
    size_t count;           /* terminals (distinct patterns) */
    /* The root's literal children counted by a small hash of the word
     * (length, first and last byte): a topic whose first word's bucket is
     * empty, under a root with no `*` or `#` child, matches nothing, found
     * without hashing the word. */
    uint32_t first_words[256];
    /* match scratch, reused */
    uint64_t epoch;
    uint64_t *marks;
    size_t marks_cap;
    struct stp_pstate *stack;
    size_t stack_cap;
    struct stp_pword *words;
    size_t words_cap;
};

#define STP_PTRIE_INIT                                                                             \
    {                                                                                              \
        0                                                                                          \
    }

/* Is `name` (a topic name without "/topic/") a pattern: one of its words is
 * exactly `*` or `#`? words: how many words it has. */
bool stp_pattern_is(const char *name, size_t len, size_t *words);

/* The payload slot of pattern `pat`, made (with *slot NULL) when missing;
 * NULL when out of memory. */
void **stp_ptrie_add(struct stp_ptrie *t, const char *pat, size_t len);
/* The payload slot of `pat`, or NULL when it is not in the trie. */
void **stp_ptrie_find(const struct stp_ptrie *t, const char *pat, size_t len);
/* Remove pattern `pat` (its payload is the caller's to free first) and the
 * nodes nothing else needs. */
void stp_ptrie_del(struct stp_ptrie *t, const char *pat, size_t len);
/* Call fn(ctx, payload) once for each pattern that matches `topic`; fn
 * returns true to stop early. fn must not change the trie. 0, or
 * STP_ENOMEM when the scratch could not grow (the walk stopped there: some
 * matches may not have been reported). */
int stp_ptrie_match(struct stp_ptrie *t, const char *topic, size_t len,
                    bool (*fn)(void *ctx, void *payload), void *ctx);
/* Call fn(ctx, payload) for each pattern, then free everything. */
void stp_ptrie_free(struct stp_ptrie *t, void (*fn)(void *ctx, void *payload), void *ctx);

#endif
