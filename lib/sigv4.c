/* placeholder: being written */
typedef int hf_placeholder_sigv4_c;
