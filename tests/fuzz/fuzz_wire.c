/* fuzz_wire.c -- libFuzzer target for everything a peer's header frame reaches: gm_wire_peek, gm_wire_decode,
 * gm_job_decode; whatever decodes must encode and decode again to the same fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gm_job.h"
#include "gm_log.h"
#include "gm_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[GM_ERR_LEN];
    uint32_t version;
    gm_msg_kind_t kind;
    gm_header_t h, h2;
    gm_job_t job, job2;
    void *buf;
    size_t len;
    (void)gm_wire_peek(data, size, &version, &kind, err);
    if (gm_wire_decode(data, size, &h, err) == 0 && h.kind != GM_MSG_JOB) {
        if (gm_wire_encode(&h, &buf, &len, err) != 0) abort();
        if (gm_wire_decode(buf, len, &h2, err) != 0) abort();
        if (memcmp(&h, &h2, sizeof h) != 0) abort(); /* decode(encode(x)) == x for every decodable header */
        free(buf);
    }
    if (gm_job_decode(data, size, &job, err) == 0) {
        /* models carry no bytes here: encode needs none, so the header must round trip */
        if (gm_job_encode(&job, &buf, &len, err) != 0) abort();
        if (gm_job_decode(buf, len, &job2, err) != 0) abort();
        if (job2.noutputs != job.noutputs || job2.nmodels != job.nmodels || job2.xsize != job.xsize ||
            job2.id != job.id || job2.mode != job.mode)
            abort();
        free(buf);
        gm_job_clear(&job2);
        gm_job_clear(&job);
    }
    return 0;
}
