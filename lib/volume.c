/* placeholder: being written */
typedef int hf_placeholder_volume_c;
