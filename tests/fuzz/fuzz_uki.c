/* SPDX-License-Identifier: MIT */
/* libFuzzer harness for the UKI readers (lib/boot/uki.c): a PE file's
 * section table (a release's UKI, or a slot file on the ESP that anyone with
 * the disk can write) and the kernel command line's security version. A
 * section read must stay inside the file and be NUL-terminated at its
 * length; a version is found only where the parameter is. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "uki.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        int fd = memfd_create("uki", MFD_CLOEXEC);
        char *section = NULL, *text = NULL;
        size_t len = 0;
        uint32_t v;

        if (fd < 0 || write(fd, data, size) != (ssize_t)size)
                abort();
        if (kos_uki_read_section(fd, ".cmdline", KOS_UKI_CMDLINE_MAX, &section, &len) == 0 &&
            (len > size || len > KOS_UKI_CMDLINE_MAX || section[len] != '\0'))
                abort();
        free(section);
        (void)kos_uki_security_version(fd, &v);
        close(fd);

        text = malloc(size + 1);
        if (!text)
                abort();
        memcpy(text, data, size);
        text[size] = '\0';
        if (kos_bk_security_version_from_cmdline(text, &v) == 0 && !strstr(text, KOS_BK_SECURITY_VERSION_PARAM "="))
                abort();
        free(text);
        return 0;
}
