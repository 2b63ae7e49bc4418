/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the manifest parser: any input either parses into a
 * manifest that re-serialises and parses again identically, or is rejected. */
#include <stdlib.h>
#include <string.h>

#include "manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct kos_manifest *m = NULL, *again = NULL;
        char *json = NULL;
        struct kos_error error = KOS_ERROR_NULL;
        size_t len;

        if (kos_manifest_parse((const char *)data, size, &m, &error) < 0)
                return 0;
        if (kos_manifest_format(m, &json, &len) < 0 || kos_manifest_parse(json, len, &again, &error) < 0)
                abort();
        if (strcmp(m->name, again->name) != 0 || m->n_components != again->n_components || m->version != again->version ||
            m->security_version != again->security_version ||
            strcmp(m->cmdline, again->cmdline) != 0)
                abort();
        for (size_t i = 0; i < m->n_components; i++)
                if (m->components[i].verify != again->components[i].verify ||
                    m->components[i].verity.enabled != again->components[i].verity.enabled ||
                    m->components[i].verity.hash_offset != again->components[i].verity.hash_offset ||
                    m->components[i].encryption.enabled != again->components[i].encryption.enabled ||
                    m->components[i].blob.size != again->components[i].blob.size)
                        abort();
        free(json);
        kos_manifest_free(m);
        kos_manifest_free(again);
        return 0;
}
