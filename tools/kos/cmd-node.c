/* SPDX-License-Identifier: MIT */
/* kos node: the client of Node Manager's Varlink API (docs/node-manager.md). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "kos.h"
#include "varlink.h"
#include "layout.h"


static const struct {
        const char *command, *method, *argument;
} calls[] = {
        {"status", "io.kos.Node.Status", NULL},     {"install", "io.kos.Node.Install", "path"},
        {"hold", "io.kos.Node.Hold", NULL},         {"start-app", "io.kos.Node.StartApp", NULL},
        {"activate", "io.kos.Node.Activate", "name"}, {"mark-good", "io.kos.Node.MarkGood", NULL},
        {"reboot", "io.kos.Node.Reboot", NULL},     {"check-update", "io.kos.Node.CheckUpdate", NULL},
        {"factory-reset", "io.kos.Node.FactoryReset", NULL},
};

int cmd_node(int argc, char **argv) {
        const char *socket_path = KOS_NODE_SOCKET;
        json_t *reply = NULL, *parameters = NULL;
        const char *error;
        int r;

        if (argc >= 3 && strcmp(argv[1], "--socket") == 0) {
                socket_path = argv[2];
                argc -= 2;
                argv += 2;
        }
        if (argc < 2 || wants_help(argc, argv)) {
                printf("Usage: kos node [--socket PATH] COMMAND\n\n"
                       "Talks to Node Manager on a running KOS system (Varlink on %s):\n"
                       "  status             what was booted, app state, boot counting, fallback, scrub\n"
                       "  install BUNDLE     install an update bundle (root)\n"
                       "  hold               do not start the app (root)\n"
                       "  start-app          start kos-app.target after a hold (root)\n"
                       "  activate NAME      put an installed manifest first in active (root)\n"
                       "  mark-good          mark this boot good now (root)\n"
                       "  reboot             reboot (root)\n"
                       "  check-update       poll the update source (/etc/kos/update.conf) now; answers when\n"
                       "                     the pull is done, then reboots into a new manifest (root)\n"
                       "  factory-reset      erase the DataFS (LUKS2 headers, key slots; the TPM forgets its\n"
                       "                     key), then reboot: the next boot formats it anew (root)\n",
                       KOS_NODE_SOCKET);
                return argc < 2 ? EXIT_USAGE : EXIT_OK;
        }
        for (size_t i = 0; i < ELEMENTSOF(calls); i++) {
                if (strcmp(argv[1], calls[i].command) != 0)
                        continue;
                if ((calls[i].argument != NULL) != (argc == 3) || argc > 3)
                        return usage_error("node", "%s takes %s", calls[i].command, calls[i].argument ? "one argument" : "no argument");
                if (calls[i].argument)
                        parameters = json_pack("{s:s}", calls[i].argument, argv[2]);
                r = varlink_call(socket_path, calls[i].method, parameters, &reply);
                if (r < 0)
                        return fail(EXIT_USAGE, "cannot reach Node Manager at %s: %s", socket_path, strerror(-r));
                if (json_unpack(reply, "{s:s}", "error", &error) == 0) {
                        const char *message = "";
                        json_unpack(reply, "{s:{s:s}}", "parameters", "message", &message);
                        fail(EXIT_INVALID, "%s: %s %s", calls[i].command, error, message);
                        json_decref(reply);
                        return EXIT_INVALID;
                }
                char *text = json_dumps(json_object_get(reply, "parameters"), JSON_INDENT(2));
                printf("%s\n", text ? text : "{}");
                free(text);
                json_decref(reply);
                return EXIT_OK;
        }
        return usage_error("node", "unknown command '%s'", argv[1]);
}
