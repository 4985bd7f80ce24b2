; Inno Setup script for EdgeStudio on Windows. Build the bundle first on Windows:
;   python -m venv .venv && .venv\Scripts\pip install -e .[package]
;   .venv\Scripts\python packaging\build.py --skip-deb      (makes dist\edgestudio\)
; then compile this script with Inno Setup 6:  iscc packaging\windows\edgestudio.iss
; The installer goes to dist\EdgeStudio-<version>-setup.exe. Not built here (no Windows machine).

#define AppName "EdgeStudio"
#define AppVersion "0.1.0"
#define BundleDir "..\..\dist\edgestudio"

[Setup]
AppId={{7B1C4E9A-5E0D-4C8B-9F43-EDGE57UD10AA}
AppName={#AppName}
AppVersion={#AppVersion}
AppPublisher=EdgeStudio developers
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
OutputDir=..\..\dist
OutputBaseFilename=EdgeStudio-{#AppVersion}-setup
Compression=lzma2/max
SolidCompression=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
SetupIconFile=edgestudio.ico
UninstallDisplayIcon={app}\edgestudio.exe
WizardStyle=modern

[Files]
Source: "{#BundleDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\edgestudio.exe"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\edgestudio.exe"; Tasks: desktopicon

[Tasks]
Name: "desktopicon"; Description: "Create a desktop icon"; Flags: unchecked

[Run]
Filename: "{app}\edgestudio.exe"; Parameters: "--self-test"; StatusMsg: "Checking the installation..."; Flags: runhidden
Filename: "{app}\edgestudio.exe"; Description: "Start EdgeStudio"; Flags: postinstall nowait skipifsilent
