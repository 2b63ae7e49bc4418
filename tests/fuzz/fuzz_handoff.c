/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the handoff parser (the end of the System Kernel's
 * /proc/cmdline, read before anything is verified): what it accepts is
 * exactly the tail of the input that early_handoff_format() would write. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "early.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char text[4096], tail[512];
        struct early_handoff h;

        if (size >= sizeof text || memchr(data, '\0', size))
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';
        if (early_handoff_parse(text, &h) < 0)
                return 0;
        size_t len = size && text[size - 1] == '\n' ? size - 1 : size; /* /proc/cmdline's newline */
        if (early_handoff_format("", &h, tail, sizeof tail) < 0)
                abort();
        size_t n = strlen(tail);
        if (n > len || memcmp(text + len - n, tail, n) != 0 || (n < len && text[len - n - 1] != ' '))
                abort();
        return 0;
}
