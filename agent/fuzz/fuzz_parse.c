/* libFuzzer target for the C line classifiers (native/parse.h), which every native scan runs
 * on every byte of every transcript before anything else looks at it.
 *
 * Input: one byte of flags, then transcript bytes. The flags pick the format (bit 0: OpenClaw,
 * else Claude Code) and, for Claude Code, whether the file is a sub-agent's (bit 1). The bytes
 * are cut into lines at '\n', as _native.claude_parse / _ingest.Ingest.claude cut a read chunk,
 * and each line is classified in order, OpenClaw's model state carried from line to line as
 * Ingest.openclaw carries it.
 *
 * Each line is copied into a heap block of exactly its length, so AddressSanitizer sees a read
 * one byte past the line (in a scan that byte is the next line, and the bug would stay silent).
 * Every slice a classifier hands back is read byte by byte, so a slice that points outside
 * memory it owns is caught too. Beyond memory errors and undefined behaviour, a classification
 * that breaks the rules a record must keep (bounded token counts, a sane timestamp, a message
 * id, at most as many tools as the line had) aborts, and so does a line classified twice with
 * two different results (state left over from the previous line).
 *
 * Build and run: agent/fuzz/run.sh SECONDS (see README.md). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem, as the extensions have it */
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "fuzz_parse: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

static volatile unsigned sink;

/* Every byte of a slice, so that ASan sees a slice that is not memory we may read. */
static void touch(str_t s) {
    unsigned h = 0;
    for (size_t i = 0; i < s.n; i++) h = h * 31u + (unsigned char)s.p[i];
    sink += h;
}

static int64_t tokens_sum(const int64_t *tok, int n) {
    int64_t t = 0;
    for (int i = 0; i < n; i++) {
        CHECK(tok[i] >= 0 && tok[i] < MAX_TOKENS);
        t += tok[i];
    }
    return t;
}

static void check_claude(const cline_t *c, const vec_t *tools) {
    CHECK(c->outcome >= O_NONE && c->outcome <= O_DEFER);
    if (c->has_cwd) {
        CHECK(c->cwd.n > 0);
        touch(c->cwd);
    }
    if (c->outcome != O_RECORD) return;
    CHECK(c->turn_line == 1);
    CHECK(c->mid.n > 0);
    touch(c->mid);
    if (c->has_rid) touch(c->rid);
    if (c->has_session) touch(c->session);
    if (c->has_agent_id) touch(c->agent_id);
    if (c->has_speed) touch(c->speed);
    if (c->has_branch) touch(c->branch);
    CHECK(c->model.n > 0);
    touch(c->model);
    CHECK(ct_ts_sane(c->ts));
    int64_t total = tokens_sum(c->tok, 5);
    CHECK(c->tok[5] >= 0);
    CHECK(ct_turn_tokens_sane(total, c->tok[5]));
    CHECK(total > 0 || c->tok[5] > 0); /* (a turn of nothing is skipped, not a record) */
    if (c->has_reported) CHECK(c->reported >= 0.0 && c->reported < MAX_USD);
    CHECK(c->ntools == tools->len);
    /* ingest_read.h keeps at most MAX_TOOLS (512) pairs a line; parse_line's MAX_VALUES bounds it */
    CHECK(c->ntools < 512);
    for (size_t i = 0; i < c->ntools; i++) {
        const ctool_t *t = (const ctool_t *)tools->data + i;
        CHECK(t->name.n > 0);
        touch(t->name);
        if (t->has_id) touch(t->id);
    }
}

static void check_openclaw(const oline_t *o, const vec_t *tools) {
    CHECK(o->outcome >= O_NONE && o->outcome <= O_DEFER);
    for (int i = 0; i < ST_N; i++)
        if (o->set[i]) touch(o->set_to[i]);
    if (o->outcome != O_RECORD) return;
    CHECK(o->turn_line == 1);
    if (o->model_from_msg) {
        CHECK(o->model.n > 0);
        touch(o->model);
    }
    if (o->provider_from_msg) touch(o->provider);
    if (o->has_id) {
        CHECK(o->id.n > 0);
        touch(o->id);
    }
    CHECK(ct_ts_sane(o->ts));
    int64_t total = tokens_sum(o->tok, 4);
    CHECK(total > 0 && ct_turn_tokens_sane(total, 0));
    if (o->has_reported) CHECK(o->reported >= 0.0 && o->reported < MAX_USD);
    CHECK(o->ntools == tools->len && o->ntools < 1024);
    for (size_t i = 0; i < o->ntools; i++) touch(((const str_t *)tools->data)[i]);
}

/* The fields of a classification that must not depend on anything but the line. */
static int claude_same(const cline_t *a, const cline_t *b) {
    return a->outcome == b->outcome && a->turn_line == b->turn_line && a->ts == b->ts &&
           memcmp(a->tok, b->tok, sizeof a->tok) == 0 && a->ntools == b->ntools &&
           a->has_cwd == b->has_cwd && str_same(a->mid, b->mid) && str_same(a->model, b->model);
}

static int openclaw_same(const oline_t *a, const oline_t *b) {
    return a->outcome == b->outcome && a->turn_line == b->turn_line && a->ts == b->ts &&
           memcmp(a->tok, b->tok, sizeof a->tok) == 0 && a->ntools == b->ntools &&
           memcmp(a->set, b->set, sizeof a->set) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const int openclaw = data[0] & 1, subagent_file = (data[0] >> 1) & 1;
    data++;
    size--;
    arena_t arena = {NULL, 0};
    vec_t ctools = {NULL, 0, 0, sizeof(ctool_t)};
    vec_t otools = {NULL, 0, 0, sizeof(str_t)};
    int model_ok = 0; /* OpenClaw: the file's model so far is a non-empty string */
    size_t pos = 0;
    while (pos < size) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        /* (a last line without its newline is classified too: the parsers see such a line
         * when the file ends with a complete line that has none) */
        size_t len = nl ? (size_t)(nl - (data + pos)) : size - pos;
        char *line = malloc(len ? len : 1);
        CHECK(line != NULL);
        memcpy(line, data + pos, len);
        if (openclaw) {
            oline_t o, again;
            oc_classify(&arena, line, len, model_ok, &otools, &o);
            check_openclaw(&o, &otools);
            oc_classify(&arena, line, len, model_ok, &otools, &again);
            CHECK(openclaw_same(&o, &again));
            if (o.set[ST_MODEL]) model_ok = o.set_to[ST_MODEL].n > 0;
        } else {
            cline_t c, again;
            claude_classify(&arena, line, len, subagent_file, &ctools, &c);
            check_claude(&c, &ctools);
            claude_classify(&arena, line, len, subagent_file, &ctools, &again);
            CHECK(claude_same(&c, &again));
        }
        free(line);
        pos += len + 1;
    }
    free(arena.buf);
    free(ctools.data);
    free(otools.data);
    return 0;
}
