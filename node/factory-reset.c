/* SPDX-License-Identifier: MIT */
/* io.kos.Node.FactoryReset (root): the DataFS forgotten for good
 * (docs/node-manager.md; docs/system-kernel.md, "The DataFS"):
 *   1. the TPM forgets: the DataFS generation counter is raised, so the
 *      sealed secret, which still unseals in the verified chain, no longer
 *      gives the old key slot's passphrase (lib/system/datafs-generation.h);
 *   2. the disk forgets: the LUKS2 headers and key slot area of the booted
 *      DataFS partition are overwritten with zeros (lib/device/datafs-erase.h);
 *   3. reboot: the System Kernel finds an empty partition and formats it anew.
 * Copies of the old header and of the old sealed blob kept elsewhere open
 * nothing: the generation they were made at is gone from the TPM. */
#include <string.h>

#include "datafs-erase.h"
#include "node.h"

json_t *api_factory_reset(struct node *n, struct varlink_connection *c, json_t *parameters) {
        struct kos_datafs_reset reset;

        if (n->job.running || n->state == INSTALLING)
                return varlink_error("io.kos.Node.WrongState", "an install is running");
        if (strcmp(n->boot.data_encryption, "luks2") != 0)
                return varlink_error("io.kos.Node.Failed", "the DataFS is not LUKS2 (kos.datafs=luks2): nothing to reset");
        /* Each half is worth doing without the other: the results say which. */
        if (kos_datafs_factory_reset(n->boot.data_device, &reset) < 0 && reset.tpm_result < 0 &&
            reset.erase_result < 0) {
                event("factory reset failed: %s; %s", reset.tpm_error, reset.erase_error);
                return varlink_error("io.kos.Node.Failed", reset.erase_error);
        }
        if (reset.tpm_result >= 0)
                event("factory reset: DataFS generation raised to %llu: no copy of the old sealed key and header opens "
                      "the old data", (unsigned long long)reset.generation);
        else
                event("factory reset: WARNING: %s: a kept copy of the old header could still be opened", reset.tpm_error);
        if (reset.marker_error[0])
                event("factory reset: WARNING: %s", reset.marker_error);
        if (reset.erase_result >= 0)
                event("factory reset: DataFS %s: LUKS2 headers and key slots erased (%llu bytes); the next boot "
                      "formats it anew", n->boot.data_device, (unsigned long long)reset.erased_bytes);
        else
                event("factory reset: WARNING: DataFS %s not erased: %s", n->boot.data_device, reset.erase_error);
        request_reboot(n, "factory reset");
        return json_pack("{s:{s:b, s:b, s:I, s:I}}", "parameters", "tpm_forgot", reset.tpm_result >= 0, "header_erased",
                         reset.erase_result >= 0, "generation", (json_int_t)reset.generation, "erased_bytes",
                         (json_int_t)reset.erased_bytes);
}
