#include <config.h>
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>
