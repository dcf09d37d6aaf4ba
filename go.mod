module github.com/perfusion-studio/perfusion

go 1.26

require (
	fyne.io/fyne/v2 v2.7.1 // indirect
	github.com/TheTitanrain/w32 v0.0.0-20180517000239-4f5cfb03fabf // indirect
	github.com/disintegration/imaging v1.6.2 // indirect
	github.com/google/flatbuffers v23.5.26+incompatible // indirect
	github.com/nlpodyssey/spago v1.1.0 // indirect
	github.com/sqweek/dialog v0.0.0-20260123140253-64c163d53aac // indirect
	golang.org/x/image v0.24.0 // indirect
)
