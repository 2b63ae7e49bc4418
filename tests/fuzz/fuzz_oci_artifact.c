/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the reader of a registry's OCI manifest (what kos
 * pull takes from a registry before anything is authenticated): it must
 * never crash, and what it accepts must hold its promises: at most the
 * layer cap, exactly one manifest and one signature layer, each digest
 * "sha256:" and 64 lowercase hex digits. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct kos_oci_artifact *a = malloc(sizeof *a);
        struct kos_error error = KOS_ERROR_NULL;

        if (!a)
                return 0;
        int r = kos_oci_artifact_parse((const char *)data, size, a, &error);
        if (r == 0) {
                if (a->n_layers > ELEMENTSOF(a->layers) || a->manifest < 0 || a->signature < 0 ||
                    (size_t)a->manifest >= a->n_layers || (size_t)a->signature >= a->n_layers ||
                    a->layers[a->manifest].kind != KOS_OCI_LAYER_MANIFEST || a->layers[a->signature].kind != KOS_OCI_LAYER_SIGNATURE)
                        abort();
                for (size_t i = 0; i < a->n_layers; i++)
                        if (strlen(a->layers[i].digest) != KOS_OCI_DIGEST_LEN || strncmp(a->layers[i].digest, "sha256:", 7) != 0)
                                abort();
        } else if (r != -EBADMSG || !memchr(error.msg, '\0', sizeof error.msg))
                abort();
        free(a);
        return 0;
}
