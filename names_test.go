package partyline

import (
	"strings"
	"testing"
)

func TestValidUsername(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"alice", true},
		{"a", true},
		{"A", true},
		{"0", true},
		{"Bob_99", true},
		{"bob.smith", true},
		{"bob-smith", true},
		{"a.", true},
		{"a..", true},
		{"a--", true},
		{strings.Repeat("a", 32), true},
		{strings.Repeat("a", 33), false},
		{"", false},
		{"-alice", false},
		{".alice", false},
		{"_alice", false},
		{".", false},
		{"..", false},
		{"../etc", false},
		{"a/b", false},
		{"a\\b", false},
		{"al ice", false},
		{" alice", false},
		{"alice ", false},
		{"alice\n", false},
		{"alice\x00", false},
		{"a:b", false}, // colons are for rooms only
		{"ålice", false},
		{"alicé", false},
		{"аlice", false}, // Cyrillic а
		{"alice\u200b", false},
		{"ａlice", false}, // fullwidth a
		{"<script>", false},
		{"a@b", false},
		{"a+b", false},
		{"a%2e", false},
		{"\xff", false},
	}
	for _, tt := range tests {
		if got := ValidUsername(tt.name); got != tt.want {
			t.Errorf("ValidUsername(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestValidRoom(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"lobby", true},
		{"a", true},
		{"9", true},
		{"team:eng", true},
		{"team:eng:backend", true},
		{"a:", true},
		{"room-1.2_b", true},
		{strings.Repeat("r", 33), true},
		{strings.Repeat("r", 64), true},
		{strings.Repeat("r", 65), false},
		{"", false},
		{":lobby", false},
		{"-lobby", false},
		{".lobby", false},
		{"_lobby", false},
		{"..", false},
		{"../lobby", false},
		{"lobby/../x", false},
		{"lo bby", false},
		{"lobby\t", false},
		{"lobby\r\n", false},
		{"lobby\x00", false},
		{"lobbÿ", false},
		{"🎉", false},
		{"lobby*", false},
		{"room:*", false},
		{"a?b", false},
		{"a#b", false},
		{"\xff", false},
	}
	for _, tt := range tests {
		if got := ValidRoom(tt.name); got != tt.want {
			t.Errorf("ValidRoom(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}
