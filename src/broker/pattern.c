/*
 * pattern.c - the trie of topic patterns (see pattern.h).
 *
 * A node's children: literal words in a hash map (the key bytes live in the
 * child), and at most one `*` child and one `#` child. A `#` node also
 * loops on itself: from (hash, i) it may consume word i and stay. A match
 * keeps a stack of (node, position) states still to visit; a state is
 * pushed only the first time it is seen in this match (the node's epoch
 * says whether its bitmap of positions belongs to this match; the bitmaps
 * live in one scratch array, words_per uint64s per node visited).
 */
#include "broker/pattern.h"

#include "stampede/array.h"
#include "stampede/error.h"

#include <stdlib.h>
#include <string.h>

enum pkind { P_LITERAL, P_STAR, P_HASH };

struct stp_pnode {
    struct stp_map kids; /* literal word -> struct stp_pnode */
    struct stp_pnode *star, *hash, *parent;
    enum pkind kind;
    bool terminal;
    void *payload;
    uint64_t epoch; /* the match that last visited this node */
    size_t mark;    /* that match: offset of its position bitmap in marks */
    size_t word_len;
    char word[]; /* a literal child's key in parent->kids */
};

struct stp_pstate {
    struct stp_pnode *node;
    size_t pos;
};

struct stp_pword {
    const char *p;
    size_t len;
};

bool stp_pattern_is(const char *name, size_t len, size_t *words)
{
    bool wild = false;
    size_t n = 1, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && name[i] != '.')
            continue;
        if (i - start == 1 && (name[start] == '*' || name[start] == '#'))
            wild = true;
        if (i < len)
            n++;
        start = i + 1;
    }
    if (words)
        *words = n;
    return wild;
}

static unsigned word_bucket(const char *w, size_t len)
{
    unsigned h = (unsigned)len * 37;
    if (len)
        h += (unsigned char)w[0] * 7u + (unsigned char)w[len - 1];
    return h & 255;
}

static struct stp_pnode *node_new(enum pkind kind, const char *word, size_t len)
{
    struct stp_pnode *n = calloc(1, sizeof(*n) + len + 1);
    if (!n)
        return NULL;
    n->kind = kind;
    n->word_len = len;
    memcpy(n->word, word, len);
    return n;
}

/* The child of n for one pattern word; made when `make` (a literal child
 * of the root is counted in t->first_words). */
static struct stp_pnode *child(struct stp_ptrie *t, struct stp_pnode *n, const char *w, size_t len,
                               bool make)
{
    struct stp_pnode **slot = NULL, *c;
    if (len == 1 && w[0] == '*')
        slot = &n->star;
    else if (len == 1 && w[0] == '#')
        slot = &n->hash;
    c = slot ? *slot : stp_map_get(&n->kids, w, len);
    if (c || !make)
        return c;
    c = node_new(slot == &n->star ? P_STAR : slot ? P_HASH : P_LITERAL, w, slot ? 0 : len);
    if (!c)
        return NULL;
    if (slot) {
        *slot = c;
    } else if (stp_map_put(&n->kids, c->word, len, c) < 0) {
        free(c);
        return NULL;
    } else if (n == t->root) {
        t->first_words[word_bucket(w, len)]++;
    }
    c->parent = n;
    return c;
}

static bool node_empty(const struct stp_pnode *n)
{
    return !n->terminal && !n->star && !n->hash && n->kids.count == 0;
}

/* Free n, unlinked from its parent, and each ancestor left with nothing. */
static void prune(struct stp_ptrie *t, struct stp_pnode *n)
{
    while (n && node_empty(n)) {
        struct stp_pnode *p = n->parent;
        if (!p)
            t->root = NULL;
        else if (p->star == n)
            p->star = NULL;
        else if (p->hash == n)
            p->hash = NULL;
        else
            stp_map_del(&p->kids, n->word, n->word_len);
        if (p && p == t->root && n->kind == P_LITERAL)
            t->first_words[word_bucket(n->word, n->word_len)]--;
        stp_map_free(&n->kids);
        free(n);
        n = p;
    }
}

/* Walk (and with make, build) the path of pattern words; the last node.
 * A `#` right after a `#` adds nothing ("a.#.#" matches what "a.#"
 * matches), so it is skipped: both are one pattern, and a run of `#` costs
 * one node in a match. */
static struct stp_pnode *walk(struct stp_ptrie *t, const char *pat, size_t len, bool make)
{
    if (!t->root && (!make || !(t->root = node_new(P_LITERAL, "", 0))))
        return NULL;
    struct stp_pnode *n = t->root;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && pat[i] != '.')
            continue;
        bool hash = i - start == 1 && pat[start] == '#';
        if (hash && n->kind == P_HASH) {
            start = i + 1;
            continue;
        }
        struct stp_pnode *c = child(t, n, pat + start, i - start, make);
        if (!c) {
            if (make)
                prune(t, n); /* out of memory: drop what was made */
            return NULL;
        }
        n = c;
        start = i + 1;
    }
    return n;
}

void **stp_ptrie_add(struct stp_ptrie *t, const char *pat, size_t len)
{
    struct stp_pnode *n = walk(t, pat, len, true);
    if (!n)
        return NULL;
    if (!n->terminal) {
        n->terminal = true;
        n->payload = NULL;
        t->count++;
    }
    return &n->payload;
}

void **stp_ptrie_find(const struct stp_ptrie *t, const char *pat, size_t len)
{
    struct stp_pnode *n = walk((struct stp_ptrie *)t, pat, len, false);
    return n && n->terminal ? &n->payload : NULL;
}

void stp_ptrie_del(struct stp_ptrie *t, const char *pat, size_t len)
{
    struct stp_pnode *n = walk(t, pat, len, false);
    if (!n || !n->terminal)
        return;
    n->terminal = false;
    n->payload = NULL;
    t->count--;
    prune(t, n);
}

/* --- matching --- */

struct match {
    struct stp_ptrie *t;
    size_t nwords, words_per, marks_used, depth;
    int err;
};

/* Push (n, pos) unless this match has seen it already. */
static void push(struct match *m, struct stp_pnode *n, size_t pos)
{
    struct stp_ptrie *t = m->t;
    if (n->epoch != t->epoch) {
        if (m->marks_used + m->words_per > t->marks_cap &&
            STP_ARRAY_RESERVE(t->marks, t->marks_cap, m->marks_used + m->words_per) < 0) {
            m->err = STP_ENOMEM;
            return;
        }
        n->epoch = t->epoch;
        n->mark = m->marks_used;
        memset(t->marks + n->mark, 0, m->words_per * sizeof(uint64_t));
        m->marks_used += m->words_per;
    }
    uint64_t *bits = t->marks + n->mark + pos / 64, bit = 1ULL << (pos % 64);
    if (*bits & bit)
        return;
    if (m->depth == t->stack_cap && STP_ARRAY_RESERVE(t->stack, t->stack_cap, m->depth + 1) < 0) {
        m->err = STP_ENOMEM;
        return;
    }
    *bits |= bit;
    t->stack[m->depth++] = (struct stp_pstate){n, pos};
}

static int split_words(struct stp_ptrie *t, const char *topic, size_t len, size_t *nwords)
{
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && topic[i] != '.')
            continue;
        if (n == t->words_cap && STP_ARRAY_RESERVE(t->words, t->words_cap, n + 1) < 0)
            return STP_ENOMEM;
        t->words[n++] = (struct stp_pword){topic + start, i - start};
        start = i + 1;
    }
    *nwords = n;
    return 0;
}

/* One state: report a terminal at the end, push what it leads to. */
static bool step(struct match *m, struct stp_pnode *n, size_t pos,
                 bool (*fn)(void *ctx, void *payload), void *ctx)
{
    bool more = pos < m->nwords;
    if (!more && n->terminal && fn(ctx, n->payload))
        return true;
    if (more && n->kids.count) {
        const struct stp_pword *w = &m->t->words[pos];
        struct stp_pnode *c = stp_map_get(&n->kids, w->p, w->len);
        if (c)
            push(m, c, pos + 1);
    }
    if (more && n->star)
        push(m, n->star, pos + 1);
    if (n->hash)
        push(m, n->hash, pos); /* `#` as zero words */
    if (more && n->kind == P_HASH)
        push(m, n, pos + 1); /* `#` takes one more word */
    return false;
}

/* Can no pattern match: the root has no `*` or `#` child and none for the
 * topic's first word? The common case of patterns under other prefixes
 * costs a scan of the first word, and mostly no hash lookup. */
static bool nothing_under(const struct stp_ptrie *t, const char *topic, size_t len)
{
    const struct stp_pnode *root = t->root;
    if (root->star || root->hash)
        return false;
    const char *dot = memchr(topic, '.', len);
    size_t n = dot ? (size_t)(dot - topic) : len;
    return t->first_words[word_bucket(topic, n)] == 0 || !stp_map_get(&root->kids, topic, n);
}

int stp_ptrie_match(struct stp_ptrie *t, const char *topic, size_t len,
                    bool (*fn)(void *ctx, void *payload), void *ctx)
{
    if (!t->root || nothing_under(t, topic, len))
        return 0;
    struct match m = {.t = t};
    if (split_words(t, topic, len, &m.nwords) < 0)
        return STP_ENOMEM;
    m.words_per = (m.nwords + 1 + 63) / 64;
    t->epoch++;
    push(&m, t->root, 0);
    while (m.depth > 0 && !m.err) {
        struct stp_pstate s = t->stack[--m.depth];
        if (step(&m, s.node, s.pos, fn, ctx))
            break;
    }
    return m.err;
}

static void free_node(struct stp_pnode *n, void (*fn)(void *ctx, void *payload), void *ctx)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->kids.cap; i++)
        if (n->kids.slots[i].hash)
            free_node(n->kids.slots[i].value, fn, ctx);
    free_node(n->star, fn, ctx);
    free_node(n->hash, fn, ctx);
    if (n->terminal && fn)
        fn(ctx, n->payload);
    stp_map_free(&n->kids);
    free(n);
}

void stp_ptrie_free(struct stp_ptrie *t, void (*fn)(void *ctx, void *payload), void *ctx)
{
    free_node(t->root, fn, ctx);
    free(t->marks);
    free(t->stack);
    free(t->words);
    *t = (struct stp_ptrie)STP_PTRIE_INIT;
}
