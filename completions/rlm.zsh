
#compdef rlm

_rlm_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _RLM_COMPLETE=complete_zsh rlm)
}

compdef _rlm_completion rlm

