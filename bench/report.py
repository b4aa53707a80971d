def write_docs(results_dir):
    return []
