/*
 * client: `vaurien ctl`, a command-line client of the control API that
 * covers toxiproxy-cli's commands and the original vaurienctl's.
 */
#ifndef VAURIEN_CTL_CLIENT_H
#define VAURIEN_CTL_CLIENT_H

/* argv[0] is "ctl". Returns the process exit status: 0 done, 1 the API
 * refused, 2 bad usage, 3 the API could not be reached. */
int ctl_client_main(int argc, char **argv);

#endif
