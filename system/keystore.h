/* SPDX-License-Identifier: MIT */
/* Where the System Kernel's initrd finds the key of an encrypted component.
 * A provider is a lookup by key id; the development provider reads
 * /etc/kos/keys/<id> from the initrd. A TPM-sealed provider plugs in here. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define KOS_KEY_MAX 4096

struct kos_key_provider {
        const char *name;
        /* 0 with the key in ret (malloc'd), -ENOKEY when the id is unknown. */
        int (*lookup)(const char *key_id, uint8_t **ret, size_t *ret_len);
};

extern const struct kos_key_provider kos_key_provider_initrd;

/* Tries each provider of the list in order. */
int kos_key_lookup(const struct kos_key_provider *const *providers, const char *key_id, uint8_t **ret, size_t *ret_len,
                   const char **ret_provider);
