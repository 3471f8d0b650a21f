/* placeholder: being written */
typedef int hf_placeholder_objstore_dir_c;
