/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the DataFS's LUKS2 token parser
 * (lib/system/datafs-key.c), which reads the sealed object off the disk
 * before the TPM sees it: whatever it accepts has the policy KOS seals with,
 * (PCR values or the signed policies), a key slot 0-31, and TPM2Bs of at most
 * KOS_TPM_BLOB_MAX bytes, and formats
 * back to a token that parses to the same object. */
#include <stdlib.h>
#include <string.h>

#include "datafs-key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static struct datafs_sealed k, back;
        static char json[DATAFS_TOKEN_MAX + 1], again[DATAFS_TOKEN_MAX];
        uint64_t generation, generation_back;
        int slot, slot_back;

        if (size > DATAFS_TOKEN_MAX)
                return 0;
        memcpy(json, data, size);
        json[size] = '\0';
        if (datafs_token_parse(json, &k, &slot, &generation) < 0)
                return 0;
        if (slot < 0 || slot > 31 || generation > INT64_MAX)
                abort();
        if (!k.authorized && (k.pcr.pcr_mask != DATAFS_SEAL_PCRS || k.pcr.private_len == 0 || k.pcr.public_len == 0 ||
                              k.pcr.private_len > KOS_TPM_BLOB_MAX || k.pcr.public_len > KOS_TPM_BLOB_MAX))
                abort();
        if (k.authorized && (k.signed_policy.private_len == 0 || k.signed_policy.public_len == 0 ||
                             k.signed_policy.private_len > KOS_TPM_BLOB_MAX ||
                             k.signed_policy.public_len > KOS_TPM_BLOB_MAX))
                abort();
        if (datafs_token_format(&k, slot, generation, again, sizeof again) < 0 ||
            datafs_token_parse(again, &back, &slot_back, &generation_back) < 0 || slot_back != slot ||
            generation_back != generation || back.authorized != k.authorized)
                abort();
        if (k.authorized ? memcmp(&back.signed_policy, &k.signed_policy, sizeof k.signed_policy) != 0
                         : back.pcr.private_len != k.pcr.private_len || back.pcr.public_len != k.pcr.public_len ||
                                   memcmp(back.pcr.private_area, k.pcr.private_area, k.pcr.private_len) != 0 ||
                                   memcmp(back.pcr.public_area, k.pcr.public_area, k.pcr.public_len) != 0)
                abort();
        return 0;
}
